#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a model comes from: a GGUF file or a Hugging Face folder.
public enum ModelSource: Sendable {
    case gguf(GGUFFile), huggingFace(HuggingFaceFolder)

    /// A file is opened as GGUF (magic checked), a folder as a Hugging Face folder.
    public static func open(path: String) throws -> ModelSource {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw FormatError(path: path, reason: MappedBytes.errnoText(errno, action: "cannot open"))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { return .huggingFace(try HuggingFaceFolder(path: path)) }
        do {
            return .gguf(try GGUFFile(path: path))
        } catch let error as FormatError where error.reason.hasPrefix("not a GGUF file") {
            if WeightFiles.isPickle(path) {
                throw FormatError(path: path, reason: "a PyTorch pickle, not a GGUF file; " + WeightFiles.conversionHint)
            }
            if path.hasSuffix(".safetensors") {
                throw FormatError(path: path, reason: "a safetensors file, not GGUF: open the Hugging Face folder that "
                    + "holds it (with config.json and tokenizer.json) instead")
            }
            throw error
        }
    }

    /// The GGUF file or the folder, for messages.
    public var path: String {
        switch self {
        case .gguf(let file): return file.path
        case .huggingFace(let folder): return folder.path
        }
    }

    /// The model's tensors.
    public var tensors: TensorStore {
        switch self {
        case .gguf(let file): return file
        case .huggingFace(let folder): return folder.weights
        }
    }
}
