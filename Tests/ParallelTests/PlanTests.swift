// The plan alone (no weights read): head assignment, KV replication, uneven FFN splits, and the errors for
// splits that quantization blocks or head counts forbid.
import TesseraFormats
import TesseraModels
import TesseraParallel
import XCTest

final class PlanTests: XCTestCase {
    func smolPlan(_ tp: Int) throws -> TensorParallelPlan {
        try TensorParallelPlan(source: ModelSource.open(path: Models.smolLM2()), size: tp)
    }

    func testSmolLM2HeadAssignment() throws {
        // 9 query heads in 3 KV groups of 3
        let tp2 = try smolPlan(2)   // whole groups, uneven: 2 groups + 1 group
        XCTAssertEqual(tp2.shards.map(\.queryHeads), [0..<6, 6..<9])
        XCTAssertEqual(tp2.shards.map(\.kvHeads), [0..<2, 2..<3])
        let tp3 = try smolPlan(3)
        XCTAssertEqual(tp3.shards.map(\.queryHeads), [0..<3, 3..<6, 6..<9])
        XCTAssertEqual(tp3.shards.map(\.kvHeads), [0..<1, 1..<2, 2..<3])
        let tp4 = try smolPlan(4)   // group 0 over ranks 0-1 (KV 0 replicated), groups 1 and 2 whole
        XCTAssertEqual(tp4.shards.map(\.queryHeads), [0..<2, 2..<3, 3..<6, 6..<9])
        XCTAssertEqual(tp4.shards.map(\.kvHeads), [0..<1, 0..<1, 1..<2, 2..<3])
        let tp8 = try smolPlan(8)   // groups over 3, 3 and 2 ranks
        XCTAssertEqual(tp8.shards.map(\.queryHeads), [0..<1, 1..<2, 2..<3, 3..<4, 4..<5, 5..<6, 6..<8, 8..<9])
        XCTAssertEqual(tp8.shards.map(\.kvHeads), [0..<1, 0..<1, 0..<1, 1..<2, 1..<2, 1..<2, 2..<3, 2..<3])
        // FFN 1536 = 48 Q4_1 blocks; vocabulary 49152 rows
        XCTAssertEqual(tp8.shards.map(\.features.count), Array(repeating: 192, count: 8))
        XCTAssertEqual(tp8.shards.map(\.vocabulary.count), Array(repeating: 6144, count: 8))
    }

    func testUnevenFFNSplitsInWholeBlocks() throws {
        // SmolLM2 at tp 5: 48 blocks of 32 -> 10, 10, 10, 9, 9 blocks
        XCTAssertEqual(try smolPlan(5).shards.map(\.features),
                       [0..<320, 320..<640, 640..<960, 960..<1248, 1248..<1536])
        // stories260K (F32, 172 features) at tp 8: 4 ranks of 22, 4 of 21
        let stories = try TensorParallelPlan(source: ModelSource.open(path: Models.stories260KHF), size: 8)
        XCTAssertEqual(stories.shards.map(\.features.count), [22, 22, 22, 22, 21, 21, 21, 21])
        XCTAssertEqual(stories.shards.map(\.kvHeads), [0..<1, 0..<1, 1..<2, 1..<2, 2..<3, 2..<3, 3..<4, 3..<4])
    }

    /// Every tp from 1 to the head count, on every model: the shards partition heads, FFN and vocabulary, each
    /// rank's heads read its KV heads with one uniform group size, and the quantized cuts fall on block boundaries.
    func testInvariantsForEveryTP() throws {
        for path in [Models.stories260KHF, Models.stories260KGGUF, Models.tinyStories, try Models.smolLM2()] {
            let source = try ModelSource.open(path: path)
            let c = try TensorParallelPlan(source: source, size: 1).layout
            for tp in 1...c.queryHeads {
                let plan = try TensorParallelPlan(source: source, size: tp)
                let s = plan.shards
                XCTAssertEqual(s.count, tp)
                XCTAssertEqual(s.map(\.queryHeads.count).reduce(0, +), c.queryHeads)
                XCTAssertEqual(s.map(\.features.count).reduce(0, +), c.features)
                XCTAssertEqual(s.map(\.vocabulary.count).reduce(0, +), c.vocabularySize)
                for r in s.indices {
                    XCTAssertEqual(s[r].queryHeads.lowerBound, r == 0 ? 0 : s[r - 1].queryHeads.upperBound)
                    XCTAssertEqual(s[r].features.lowerBound, r == 0 ? 0 : s[r - 1].features.upperBound)
                    XCTAssertFalse(s[r].queryHeads.isEmpty, "\(path) tp \(tp) rank \(r)")
                    let perKV = s[r].queryHeads.count / s[r].kvHeads.count
                    XCTAssertEqual(perKV * s[r].kvHeads.count, s[r].queryHeads.count)
                    for (local, head) in s[r].queryHeads.enumerated() {   // the kernel's mapping = the model's
                        XCTAssertEqual(s[r].kvHeads.lowerBound + local / perKV, head / (c.queryHeads / c.kvHeads),
                                       "\(path) tp \(tp) rank \(r) head \(head)")
                    }
                }
            }
            XCTAssertThrowsError(try TensorParallelPlan(source: source, size: c.queryHeads + 1)) { error in
                XCTAssertTrue("\(error)".contains("a rank needs at least one of the \(c.queryHeads) query heads"), "\(error)")
            }
        }
    }

    func testWeightSharesAddUp() throws {
        let path = try Models.smolLM2()
        let file = try GGUFFile(path: path)
        let single = try TensorParallelPlan(source: .gguf(file), size: 1)[0].weights
        // tp 1 holds every tensor but the (tied) embedding table once
        let stored = file.tensorInfos.values.reduce(0) { $0 + $1.rowCount * $1.rowBytes }
        let vectorsStored = file.tensorInfos.values.filter { $0.shape.count == 1 }.reduce(0) { $0 + $1.rowCount * $1.rowBytes }
        XCTAssertEqual(single.mapped + single.owned + single.head + vectorsStored, stored)
        for tp in [2, 4, 8] {
            let shares = try TensorParallelPlan(source: .gguf(file), size: tp).shards.map(\.weights)
            XCTAssertEqual(shares.map(\.owned).reduce(0, +), single.owned)     // o/down: no replication
            XCTAssertEqual(shares.map(\.head).reduce(0, +), single.head)
            XCTAssertGreaterThanOrEqual(shares.map(\.mapped).reduce(0, +), single.mapped)  // KV replicas
            print("SmolLM2 tp \(tp) rank 0 planned: \(shares[0])")
        }
    }

    // MARK: - Splits that cannot be made

    /// A one-layer GGUF-named tensor table: 4 heads of 64, hidden 256, with `o`/`down` in the given types.
    func table(intermediate: Int, o: GGMLType, down: GGMLType) throws -> (LlamaConfig, [String: TensorInfo]) {
        let c = try LlamaConfig(hiddenSize: 256, intermediateSize: intermediate, layerCount: 1, headCount: 4,
                                kvHeadCount: 4, vocabularySize: 512, tieWordEmbeddings: true)
        var t: [String: TensorInfo] = [:]
        func add(_ name: String, _ type: GGMLType, _ shape: [Int]) { t[name] = TensorInfo(name: name, type: type, shape: shape) }
        add("token_embd.weight", .q8_0, [512, 256]); add("output_norm.weight", .f32, [256])
        add("blk.0.attn_norm.weight", .f32, [256]); add("blk.0.ffn_norm.weight", .f32, [256])
        for p in ["attn_q", "attn_k", "attn_v"] { add("blk.0.\(p).weight", .q4_K, [256, 256]) }
        add("blk.0.attn_output.weight", o, [256, 256])
        add("blk.0.ffn_gate.weight", .q4_1, [intermediate, 256]); add("blk.0.ffn_up.weight", .q4_1, [intermediate, 256])
        add("blk.0.ffn_down.weight", down, [256, intermediate])
        return (c, t)
    }

    func testHeadsInsideAQuantizationBlockAreRefused() throws {
        let (c, t) = try table(intermediate: 512, o: .q4_K, down: .q4_0)
        XCTAssertNoThrow(try TensorParallelPlan(layout: LlamaFamily.layout(c, naming: .gguf, tensors: Set(t.keys)), tensors: t, size: 1, file: "synthetic.gguf"))
        // tp 2 cuts o at column 128 (head 2 × 64): inside a 256-element Q4_K block
        XCTAssertThrowsError(try TensorParallelPlan(layout: LlamaFamily.layout(c, naming: .gguf, tensors: Set(t.keys)), tensors: t, size: 2, file: "synthetic.gguf")) { error in
            XCTAssertEqual(error as? TensorParallelError, .unsplittable(tensor: "blk.0.attn_output.weight", type: .q4_K,
                blockSize: 256, tp: 2, reason: "rank 1's query heads start at input column 128 (head 2 × head size 64), inside a block"))
            XCTAssertEqual("\(error)", "tensor 'blk.0.attn_output.weight' (Q4_K, blocks of 256) cannot be split across tp 2: "
                + "rank 1's query heads start at input column 128 (head 2 × head size 64), inside a block")
        }
    }

    func testFewerBlocksThanRanksIsRefused() throws {
        let (c, t) = try table(intermediate: 64, o: .q8_0, down: .q4_0)   // 64 columns = 2 blocks of 32
        XCTAssertNoThrow(try TensorParallelPlan(layout: LlamaFamily.layout(c, naming: .gguf, tensors: Set(t.keys)), tensors: t, size: 2, file: "synthetic.gguf"))
        XCTAssertThrowsError(try TensorParallelPlan(layout: LlamaFamily.layout(c, naming: .gguf, tensors: Set(t.keys)), tensors: t, size: 4, file: "synthetic.gguf")) { error in
            XCTAssertEqual("\(error)", "tensor 'blk.0.ffn_down.weight' (Q4_0, blocks of 32) cannot be split across tp 4: "
                + "its 64 input columns are 2 blocks, fewer than the ranks")
        }
    }

    func testMissingTensorIsNamed() throws {
        var (c, t) = try table(intermediate: 512, o: .q8_0, down: .q4_0)
        t["blk.0.ffn_up.weight"] = nil
        c.tieWordEmbeddings = true
        XCTAssertThrowsError(try TensorParallelPlan(layout: LlamaFamily.layout(c, naming: .gguf, tensors: Set(t.keys)), tensors: t, size: 2, file: "synthetic.gguf")) { error in
            XCTAssertEqual(error as? ModelError, .missingTensor(file: "synthetic.gguf", tensor: "blk.0.ffn_up.weight"))
        }
    }
}
