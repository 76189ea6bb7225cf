import ArgumentParser
import Foundation
import TesseraFormats

/// `infer-worker quantize`: a GGUF model with its weight matrices converted to Q8_0, Q4_0, F16 or F32 (quantized ones
/// are requantized through float32). Every metadata key is copied except `general.file_type`; tensor order and
/// alignment are kept; norms and biases stay as stored (the rule is `GGMLType.conversionTarget`). The output appears
/// only once complete, so a failure never leaves a half-written file.
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize", abstract: "Convert a GGUF model's weight matrices to Q8_0, Q4_0, F16 or F32.",
        discussion: """
            Only 2-D weight matrices are converted; a matrix whose row length is not a multiple of 32 stays F16/F32 \
            (others become F16) when the type is q8_0 or q4_0. A summary goes to stderr. Hugging Face folders are not \
            converted to files: load them with --quantize instead.
            """)

    @Option(help: "Input GGUF file.") var model: String
    @Option(help: "Target type: q8_0, q5_1, q5_0, q4_0, f16 or f32.") var type: String
    @Option(help: "Output GGUF file (written beside it under a temporary name, then renamed; never the input).") var out: String

    func validate() throws {
        guard target != nil else {
            throw ValidationError("unknown --type '\(type)': choose one of "
                + GGMLType.conversionTypes.map { $0.description.lowercased() }.joined(separator: ", "))
        }
    }

    private var target: GGMLType? { GGMLType(name: type).flatMap { GGMLType.conversionTypes.contains($0) ? $0 : nil } }

    func run() throws {
        guard let target, let fileType = target.llamaFileType else { throw ValidationError("unknown --type '\(type)'") }
        let start = Date()
        let file = try openInput()
        try checkOutput()

        var writer = try GGUFWriter(alignment: file.alignment)
        for key in file.metadataKeys {
            guard let value = key == "general.file_type" ? .uint32(fileType) : file.metadata[key] else { continue }
            do { try writer.set(key, value) } catch { throw FormatError(path: model, reason: "metadata key '\(key)': \(error)") }
        }
        try writer.set("general.file_type", .uint32(fileType))     // in place when the input had it, else added last

        let plan = file.tensorNames.compactMap { file.tensorInfos[$0] }.map { ($0, GGMLType.conversionTarget(for: $0, requested: target)) }
        let outputs = plan.map { info, choice in TensorInfo(name: info.name, type: choice.type, shape: info.shape) }
        try writer.write(to: out, tensors: outputs) { i, emit in
            let converted: TensorView
            do { converted = try file.view(outputs[i].name).converted(to: outputs[i].type) } catch let error as TensorConversionError {
                throw FormatError(path: model, reason: error.description)
            }
            try withExtendedLifetime(converted) { try emit(converted.data) }    // its owner holds the bytes
        }
        log(summary(plan, outputs, target: target, fileType: fileType, seconds: Date().timeIntervalSince(start)))
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

    /// Tensors converted / kept / fallen back, and bytes before -> after.
    private func summary(_ plan: [(TensorInfo, ConversionTarget)], _ outputs: [TensorInfo], target: GGMLType,
                         fileType: UInt32, seconds: Double) -> String {
        func bytes(_ info: TensorInfo) -> Int { info.type.byteCount(elements: info.elementCount) ?? 0 }
        func count(_ outcome: ConversionTarget.Outcome) -> Int { plan.filter { $0.1.outcome == outcome }.count }
        func fileSize(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
        let before = plan.reduce(0) { $0 + bytes($1.0) }, after = outputs.reduce(0) { $0 + bytes($1) }
        var lines = [String(format: "quantize: %@ -> %@ as %@ (general.file_type %u) in %.1f s", model, out,
                            target.description, fileType, seconds),
                     "  \(count(.converted)) tensors converted to \(target), \(count(.kept)) kept as stored, "
                        + "\(count(.fellBack)) fallen back"]
        let fallen = plan.filter { $0.1.outcome == .fellBack }
        if !fallen.isEmpty {
            let names = fallen.prefix(8).map { "\($0.0.name) \($0.0.shape) as \($0.1.type)" }
            lines.append("  fallen back (row length not a multiple of \(target.blockSize)): " + names.joined(separator: ", ")
                + (fallen.count > 8 ? ", ... \(fallen.count - 8) more" : ""))
        }
        lines.append(String(format: "  tensor data %d -> %d bytes (ratio %.3f); file %d -> %d bytes", before, after,
                            before > 0 ? Double(after) / Double(before) : 1, fileSize(model), fileSize(out)))
        return lines.joined(separator: "\n")
    }
}
