import ArgumentParser
import Foundation
import TesseraFormats

/// `infer-worker quantize`: a GGUF model written as one of llama.cpp's file types (`q4_k_m`, `q6_k`, `q8_0`, ...),
/// each matrix re-encoded through float32 with the type the mix's per-tensor rules give it (`QuantizationMix.plan`:
/// the output head at Q6_K, some attention-value and FFN-down layers at more bits, fallbacks for rows that are not
/// a multiple of the type's block), as `llama-quantize` does without an importance matrix. Every metadata key is
/// copied except `general.file_type` (set to the mix) and `general.quantization_version` (set to 2); tensor order and
/// alignment are kept; norms and biases stay as stored. The output appears only once complete, so a failure never
/// leaves a half-written file.
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize", abstract: "Write a GGUF model as one of llama.cpp's file types (q4_k_m, q6_k, q8_0, ...).",
        discussion: """
            Types: \(QuantizationMix.all.map(\.name).joined(separator: ", ")). The K mixes follow llama-quantize's \
            per-tensor rules; --pure gives every matrix the one type (fallbacks for row lengths still apply). The \
            source may be F32, F16, BF16 or quantized (requantizing loses accuracy). A summary goes to stderr. Hugging \
            Face folders are not converted to files: load them with --quantize instead.
            """)

    @Option(help: "Input GGUF file.") var model: String
    @Option(help: "Target file type: q4_k_m, q5_k_m, q6_k, q8_0, q4_0, iq4_xs, ... (see the list above).") var type: String
    @Option(help: "Output GGUF file (written beside it under a temporary name, then renamed; never the input).") var out: String
    @Flag(help: "Every matrix in the base type of --type, none at more bits (llama-quantize's --pure).") var pure = false

    func validate() throws {
        guard QuantizationMix(name: type) != nil else {
            throw ValidationError("unknown --type '\(type)': choose one of "
                + QuantizationMix.all.map(\.name).joined(separator: ", "))
        }
    }

    func run() throws {
        guard let mix = QuantizationMix(name: type) else { throw ValidationError("unknown --type '\(type)'") }
        let start = Date()
        let file = try openInput()
        try checkOutput()

        var writer = try GGUFWriter(alignment: file.alignment)
        let replaced: [String: GGUFValue] = ["general.file_type": .uint32(mix.fileType), "general.quantization_version": .uint32(2)]
        for key in file.metadataKeys {
            guard let value = replaced[key] ?? file.metadata[key] else { continue }
            do { try writer.set(key, value) } catch { throw FormatError(path: model, reason: "metadata key '\(key)': \(error)") }
        }
        for (key, value) in replaced.sorted(by: { $0.key < $1.key }) { try writer.set(key, value) }  // in place, or added last

        let infos = file.tensorNames.compactMap { file.tensorInfos[$0] }
        let plan = Array(zip(infos, mix.plan(infos, headsPerKVHead: headsPerKVHead(file), pure: pure)))
        let outputs = plan.map { info, choice in TensorInfo(name: info.name, type: choice.type, shape: info.shape) }
        try writer.write(to: out, tensors: outputs) { i, emit in
            let converted: TensorView
            do { converted = try file.view(outputs[i].name).converted(to: outputs[i].type) } catch let error as TensorConversionError {
                throw FormatError(path: model, reason: error.description)
            }
            try withExtendedLifetime(converted) { try emit(converted.data) }    // its owner holds the bytes
        }
        log(summary(plan, outputs, mix: mix, seconds: Date().timeIntervalSince(start)))
    }

    /// Query heads per key/value head, from `<arch>.attention.head_count(_kv)`; 1 when the file does not say.
    private func headsPerKVHead(_ file: GGUFFile) -> Int {
        guard let arch = file.metadata["general.architecture"]?.string,
              let heads = file.metadata["\(arch).attention.head_count"]?.int, heads > 0 else { return 1 }
        let kv = file.metadata["\(arch).attention.head_count_kv"]?.int ?? heads
        return kv > 0 ? heads / kv : 1
    }

    /// The input as a GGUF file; a Hugging Face folder or safetensors file gets a refusal pointing to `--quantize`.
    private func openInput() throws -> GGUFFile {
        let refusal = "infer-worker quantize converts GGUF files only; load a Hugging Face (safetensors) model with "
            + "`--quantize q8_0` or `--quantize q4_0` instead (converted at load time)"
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: model, isDirectory: &isFolder), isFolder.boolValue {
            throw FormatError(path: model, reason: "a folder, not a GGUF file: " + refusal)
        }
        do {
            return try GGUFFile(path: model)
        } catch let error as FormatError where error.reason.hasPrefix("not a GGUF file") && model.hasSuffix(".safetensors") {
            throw FormatError(path: model, reason: "a safetensors file, not GGUF: " + refusal)
        }
    }

    /// Refuses an output that is the input (under any spelling, or a link to it) or a folder.
    private func checkOutput() throws {
        func identity(_ path: String) -> (UInt64, UInt64)? {
            var st = stat()
            return stat(path, &st) == 0 ? (UInt64(st.st_dev), UInt64(st.st_ino)) : nil
        }
        let sameName = URL(fileURLWithPath: out).standardizedFileURL.path == URL(fileURLWithPath: model).standardizedFileURL.path
        if sameName || (identity(out).map { o in identity(model).map { $0 == o } ?? false } ?? false) {
            throw FormatError(path: out, reason: "--out is the input file (--model \(model)): refusing to overwrite it; "
                + "write the converted model to another path")
        }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isFolder), isFolder.boolValue {
            throw FormatError(path: out, reason: "--out is a folder: give the path of the GGUF file to write")
        }
    }

    /// Tensors per type, kept, fallen back, and bytes before -> after.
    private func summary(_ plan: [(TensorInfo, ConversionTarget)], _ outputs: [TensorInfo], mix: QuantizationMix,
                         seconds: Double) -> String {
        func bytes(_ info: TensorInfo) -> Int { info.type.byteCount(elements: info.elementCount) ?? 0 }
        func fileSize(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
        let before = plan.reduce(0) { $0 + bytes($1.0) }, after = outputs.reduce(0) { $0 + bytes($1) }
        let written = plan.filter { $0.1.outcome != .kept }
        let perType = Dictionary(grouping: written, by: { $0.1.type }).map { ($0.key, $0.value.count) }
            .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.rawValue < $1.0.rawValue }
        let kept = plan.count - written.count, fallen = plan.filter { $0.1.outcome == .fellBack }
        var lines = [String(format: "quantize: %@ -> %@ as %@%@ (general.file_type %u) in %.1f s", model, out,
                            mix.name, pure ? " (pure)" : "", mix.fileType, seconds),
                     "  " + perType.map { "\($0.1) tensors as \($0.0)" }.joined(separator: ", ")
                        + (perType.isEmpty ? "" : "; ") + "\(kept) kept as stored, \(fallen.count) fallen back"]
        if !fallen.isEmpty {
            let names = fallen.prefix(8).map { "\($0.0.name) \($0.0.shape) as \($0.1.type)" }
            lines.append("  fallen back (row length not a multiple of the block): " + names.joined(separator: ", ")
                + (fallen.count > 8 ? ", ... \(fallen.count - 8) more" : ""))
        }
        lines.append(String(format: "  tensor data %ld -> %ld bytes (ratio %.3f); file %ld -> %ld bytes", before, after,
                            before > 0 ? Double(after) / Double(before) : 1, fileSize(model), fileSize(out)))
        return lines.joined(separator: "\n")
    }
}
