import Foundation

/// What a model folder holds besides safetensors, and the refusal of PyTorch pickles.
enum WeightFiles {
    /// File names in `folder`, sorted. Missing or unreadable folder -> `FormatError` naming it.
    static func list(_ folder: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        } catch {
            throw FormatError(path: folder, reason: "cannot list the folder: \(error.localizedDescription)")
        }
    }

    static func isPickle(_ name: String) -> Bool {
        name.hasSuffix(".bin") || name.hasSuffix(".pt") || name.hasSuffix(".pth") || name.hasSuffix(".ckpt")
            || name == "pytorch_model.bin.index.json"
    }

    /// How to convert pickle weights to safetensors.
    static let conversionHint = "pickled PyTorch weights can execute arbitrary code when loaded, so they are not read. "
        + "Convert the folder to safetensors once, in Python: `from transformers import AutoModelForCausalLM; "
        + "m = AutoModelForCausalLM.from_pretrained(DIR); m.save_pretrained(DIR, safe_serialization=True)` "
        + "(writes model.safetensors)"

    /// The error for a folder without safetensors: a refusal naming the pickles if there are some.
    static func noSafetensorsError(folder: String, names: [String]) -> FormatError {
        let pickles = names.filter(isPickle)
        if !pickles.isEmpty {
            return FormatError(path: folder, reason: "only PyTorch pickle weights found (\(pickles.joined(separator: ", "))); "
                + conversionHint)
        }
        return FormatError(path: folder, reason: "no model.safetensors, model.safetensors.index.json or *.safetensors file")
    }
}

extension JSONValue {
    /// Maps and parses the JSON file at `path`; errors name the path.
    public static func parse(file path: String) throws -> JSONValue {
        let mapped = try MappedBytes(path: path)
        return try parse(mapped.buffer, path: path)
    }
}
