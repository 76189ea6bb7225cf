// Text normalizers of tokenizer.json, applied to each text segment between added tokens.
import Foundation

extension NormalizerStep {
    func apply(_ text: String) -> String {
        switch self {
        case .prepend(let p): return text.isEmpty ? text : p + text
        case .replace(let pattern, let content):
            return pattern.isEmpty ? text : text.replacingOccurrences(of: pattern, with: content)
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase: return text.lowercased()
        }
    }
}
