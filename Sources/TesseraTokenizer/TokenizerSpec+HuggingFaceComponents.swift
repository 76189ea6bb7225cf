// The pieces of a tokenizer.json pipeline: normalizer, pre_tokenizer, decoder, post_processor, and the chat
// template of tokenizer_config.json. Unsupported component types are errors naming their key.
import Foundation
import TesseraFormats

extension TokenizerSpec {
    static func normalizers(_ v: JSONValue?, key: String, fail: (String, String) -> TokenizerError) throws -> [NormalizerStep] {
        guard let v, v != .null else { return [] }
        let type = v["type"]?.string ?? "(none)"
        switch type {
        case "Sequence":
            var out: [NormalizerStep] = []
            for (i, n) in (v["normalizers"]?.array ?? []).enumerated() {
                out += try normalizers(n, key: "\(key).normalizers[\(i)]", fail: fail)
            }
            return out
        case "Prepend":
            guard let p = v["prepend"]?.string else { throw fail("\(key).prepend", "missing") }
            return [.prepend(p)]
        case "Replace":
            guard let pattern = v["pattern"]?["String"]?.string, let content = v["content"]?.string else {
                throw fail("\(key).pattern", "only a literal String pattern with a content is supported")
            }
            return [.replace(pattern, with: content)]
        case "NFC": return [.nfc]
        case "NFD": return [.nfd]
        case "NFKC": return [.nfkc]
        case "NFKD": return [.nfkd]
        case "Lowercase": return [.lowercase]
        default: throw fail("\(key).type", "normalizer '\(type)' is not supported")
        }
    }

    static func preTokenizers(_ v: JSONValue?, key: String, fail: (String, String) -> TokenizerError) throws -> [PreTokenizerStep] {
        guard let v, v != .null else { return [] }
        let type = v["type"]?.string ?? "(none)"
        switch type {
        case "Sequence":
            var out: [PreTokenizerStep] = []
            for (i, p) in (v["pretokenizers"]?.array ?? []).enumerated() {
                out += try preTokenizers(p, key: "\(key).pretokenizers[\(i)]", fail: fail)
            }
            return out
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: v["add_prefix_space"]?.bool ?? true, useRegex: v["use_regex"]?.bool ?? true)]
        case "Metaspace":
            let rep = v["replacement"]?.string?.unicodeScalars.first ?? "\u{2581}"
            let scheme: PrependScheme
            switch v["prepend_scheme"]?.string {
            case "first": scheme = .first
            case "never": scheme = .never
            case "always": scheme = .always
            case nil: scheme = (v["add_prefix_space"]?.bool ?? true) ? .always : .never
            case let other?: throw fail("\(key).prepend_scheme", "'\(other)' is not one of always, first, never")
            }
            return [.metaspace(replacement: rep, prepend: scheme, split: v["split"]?.bool ?? true)]
        case "Digits":
            return [.digits(individual: v["individual_digits"]?.bool ?? false)]
        case "Split":
            let splitter: Splitter
            if let source = v["pattern"]?["Regex"]?.string {
                if let known = SplitPattern(regex: source) {
                    splitter = .known(known)
                } else {
                    do { splitter = .regex(try RegexSplitter(source)) } catch {
                        throw fail("\(key).pattern.Regex", "cannot compile '\(source)': \(error)")
                    }
                }
            } else if let literal = v["pattern"]?["String"]?.string {
                splitter = .literal(Array(literal.unicodeScalars))
            } else {
                throw fail("\(key).pattern", "needs a Regex or String")
            }
            let behavior: SplitBehavior
            switch v["behavior"]?.string ?? "Isolated" {
            case "Isolated": behavior = .isolated
            case "Removed": behavior = .removed
            case "MergedWithPrevious": behavior = .mergedWithPrevious
            case "MergedWithNext": behavior = .mergedWithNext
            case let other: throw fail("\(key).behavior", "split behavior '\(other)' is not supported")
            }
            return [.split(splitter, behavior: behavior, invert: v["invert"]?.bool ?? false)]
        default:
            throw fail("\(key).type", "pre-tokenizer '\(type)' is not supported")
        }
    }

    /// Decoder: byte-level or SentencePiece ("▁" replacement, byte fallback, leading-space strip).
    mutating func readDecoder(_ v: JSONValue?, fail: (String, String) -> TokenizerError) throws {
        guard let v, v != .null else { return }
        let parts = v["type"]?.string == "Sequence" ? (v["decoders"]?.array ?? []) : [v]
        for d in parts {
            switch d["type"]?.string ?? "" {
            case "ByteLevel": byteLevel = true
            case "Replace":
                if d["content"]?.string == " ", let p = d["pattern"]?["String"]?.string?.unicodeScalars, p.count == 1,
                   let s = p.first { spaceReplacement = s }
            case "Strip":
                if d["content"]?.string == " ", (d["start"]?.int ?? 0) > 0 { stripLeadingSpace = true }
            case "Metaspace":
                if let s = d["replacement"]?.string?.unicodeScalars.first { spaceReplacement = s }
                let scheme = d["prepend_scheme"]?.string ?? ((d["add_prefix_space"]?.bool ?? true) ? "always" : "never")
                stripLeadingSpace = scheme != "never"
            default: break  // ByteFallback, Fuse and the like need nothing
            }
        }
    }

    /// Ids before and after the text in a TemplateProcessing (or Bert/Roberta) post-processor.
    static func template(_ v: JSONValue?, key: String,
                         fail: (String, String) -> TokenizerError) throws -> (prefix: [Int], suffix: [Int]) {
        guard let v, v != .null else { return ([], []) }
        switch v["type"]?.string ?? "" {
        case "Sequence":
            var prefix: [Int] = [], suffix: [Int] = []
            for (i, p) in (v["processors"]?.array ?? []).enumerated() {
                let t = try template(p, key: "\(key).processors[\(i)]", fail: fail)
                prefix += t.prefix; suffix += t.suffix
            }
            return (prefix, suffix)
        case "ByteLevel": return ([], [])
        case "TemplateProcessing":
            guard let single = v["single"]?.array else { throw fail("\(key).single", "missing") }
            var prefix: [Int] = [], suffix: [Int] = [], seenSequence = false
            for (i, item) in single.enumerated() {
                if item["Sequence"] != nil { seenSequence = true; continue }
                guard let name = item["SpecialToken"]?["id"]?.string,
                      let ids = v["special_tokens"]?[name]?["ids"]?.array?.compactMap(\.int) else {
                    throw fail("\(key).single[\(i)]", "special token not found in special_tokens")
                }
                if seenSequence { suffix += ids } else { prefix += ids }
            }
            return (prefix, suffix)
        case "BertProcessing", "RobertaProcessing":
            let cls = v["cls"]?.array?.last?.int, sep = v["sep"]?.array?.last?.int
            return (cls.map { [$0] } ?? [], sep.map { [$0] } ?? [])
        case let other:
            throw fail("\(key).type", "post-processor '\(other)' is not supported")
        }
    }

    /// tokenizer_config.json `chat_template` (a string, or named templates: "default"), else chat_template.jinja.
    static func chatTemplate(_ tc: JSONValue?, folder: String?) -> String? {
        if let s = tc?["chat_template"]?.string { return s }
        if let list = tc?["chat_template"]?.array {
            let named = list.first(where: { $0["name"]?.string == "default" }) ?? list.first
            if let s = named?["template"]?.string { return s }
        }
        guard let folder else { return nil }
        let file = URL(fileURLWithPath: folder).appendingPathComponent("chat_template.jinja").path
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
