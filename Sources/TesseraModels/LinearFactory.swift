// Where a model's weights come from: a factory hands each family's builder its linears, vectors and embedding
// table. The dense factory reads whole tensors; a tensor-parallel one (TesseraParallel) hands out this rank's slices.
import TesseraFormats
import TesseraKernels

/// Makes the weights a family's builder asks for, each named and shaped by the family's `ModelLayout`.
public protocol LinearFactory {
    /// The checkpoint's tensors (models keep it, so the mappings live as long as they do).
    var store: any TensorStore { get }
    /// Units of `axis` (of `units` in the whole model) this factory's linears cover: all of them unless sharded.
    func range(_ axis: ShardAxis, of units: Int) -> Range<Int>
    /// A linear as `spec` says it may be split; `sharing` is the embedding table a tied head reuses.
    func linear(_ spec: LinearSpec, sharing: WeightMatrix?) throws -> any Linear
    /// A float vector, decoded (replicated).
    func vector(_ spec: VectorSpec) throws -> [Float]
    /// The token-embedding table `[rows × cols]`, replicated (lookups read single rows).
    func embedding(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix
}

extension LinearFactory {
    public func linear(_ spec: LinearSpec) throws -> any Linear { try linear(spec, sharing: nil) }
}

/// Lookups in a checkpoint's tensor table (no weights read), with the loaders' errors naming file and tensor.
public struct TensorTable: Sendable {
    public let tensors: [String: TensorInfo]
    public let file: String

    public init(tensors: [String: TensorInfo], file: String) { self.tensors = tensors; self.file = file }

    /// The tensor's info, checked against `shape`.
    public func info(_ name: String, _ shape: [Int]) throws -> TensorInfo {
        guard let info = tensors[name] else { throw ModelError.missingTensor(file: file, tensor: name) }
        guard info.shape == shape else { throw ModelError.shapeMismatch(tensor: name, expected: shape, found: info.shape) }
        return info
    }

    /// A `[count]` vector in a float encoding (norms, biases, rotary factors).
    @discardableResult
    public func vector(_ name: String, _ count: Int) throws -> TensorInfo {
        let info = try info(name, [count])
        guard [.f32, .f16, .bf16].contains(info.type) else {
            throw ModelError.unsupportedTensor(tensor: name, reason: "\(info.type) vectors are not supported (F32, F16, BF16)")
        }
        return info
    }
}

/// Reads a checkpoint's tensors the way models hold them: shapes checked, float matrices converted when quantizing
/// at load, vectors decoded. Shared by every factory.
public struct WeightReader {
    public let store: any TensorStore
    /// The checkpoint, for messages.
    public let file: String
    /// The type F32/F16/BF16 matrices are converted to at load (`LoadOptions.quantize`), if any.
    public let quantize: GGMLType?

    public init(store: any TensorStore, file: String, quantize: GGMLType?) {
        self.store = store; self.file = file; self.quantize = quantize
    }

    public var table: TensorTable { TensorTable(tensors: store.tensorInfos, file: file) }

    /// Rows `rows` (all when nil) of a tensor of `shape`, in a mapping of their own.
    public func view(_ name: String, shape: [Int], rows: Range<Int>? = nil) throws -> TensorView {
        _ = try table.info(name, shape)
        return try store.isolatedView(name, rows: rows)
    }

    /// A matrix from `view`, converted when quantizing at load. A linear's converted copy (`linear`) is never read
    /// once repacked, so it may be released; an embedding table's is (lookups).
    public func matrix(_ view: TensorView, linear: Bool) throws -> WeightMatrix {
        let loaded = try view.loaded(quantize: quantize)
        if linear { (loaded.owner as? AlignedBuffer)?.discardable = true }
        do { return try WeightMatrix(loaded) } catch let e as KernelError {
            throw ModelError.unsupportedTensor(tensor: view.info.name, reason: e.reason)
        }
    }

    /// A `[count]` float vector, decoded.
    public func vector(_ name: String, count: Int) throws -> [Float] {
        try table.vector(name, count)
        let m = try matrix(try store.isolatedView(name, rows: nil), linear: false)
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { m.dequantizeRow(0, into: $0.baseAddress!) }
        return out
    }
}

extension TensorView {
    /// This weight as the model will hold it: converted to `quantize` when that is set and the weight is an F32, F16
    /// or BF16 matrix whose rows fit the type's blocks (quantize-at-load, `--quantize`), else itself, in place.
    /// Quantized checkpoints are never re-quantized at load; `infer-worker quantize` does that offline.
    public func loaded(quantize: GGMLType?) throws -> TensorView {
        guard let quantize, [.f32, .f16, .bf16].contains(info.type),
              GGMLType.conversionTarget(for: info, requested: quantize).outcome == .converted else { return self }
        let result = try converted(to: quantize)
        (owner as? FileBackedPages)?.releasePages(data)   // the float source was read once; do not keep it resident
        return result
    }
}

/// One rank holding the whole model: every linear is the checkpoint's full matrix, in place.
public struct DenseLinearFactory: LinearFactory {
    public let reader: WeightReader
    public let compute: ComputeOptions
    public var store: any TensorStore { reader.store }

    public init(source: ModelSource, options: LoadOptions) {
        self.init(reader: WeightReader(store: source.tensors, file: source.path, quantize: options.quantize),
                  compute: options.compute)
    }

    public init(reader: WeightReader, compute: ComputeOptions) { self.reader = reader; self.compute = compute }

    public func range(_ axis: ShardAxis, of units: Int) -> Range<Int> { 0..<units }

    public func linear(_ spec: LinearSpec, sharing: WeightMatrix?) throws -> any Linear {
        // a tied head shares the embedding's rows: once repacked, their mapped pages are released and lookups fault
        // back in only the rows they read (a converted table is not discardable, so it stays)
        if let sharing { return DenseLinear(weight: sharing, compute: compute) }
        let weight = try reader.matrix(reader.view(spec.name, shape: [spec.rows, spec.cols]), linear: true)
        return DenseLinear(weight: weight, bias: try spec.bias.map { try reader.vector($0, count: spec.rows) },
                           compute: compute)
    }

    public func vector(_ spec: VectorSpec) throws -> [Float] { try reader.vector(spec.name, count: spec.count) }

    public func embedding(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        try reader.matrix(reader.view(name, shape: [rows, cols]), linear: false)
    }
}
