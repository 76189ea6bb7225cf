// Typed reads of configuration values from HF config.json or GGUF metadata, with errors naming file and key.
import TesseraFormats

/// A configuration value from either source: both JSON and GGUF values answer these.
protocol ConfigScalar {
    var int: Int? { get }
    var double: Double? { get }
    var string: String? { get }
    var bool: Bool? { get }
}

extension JSONValue: ConfigScalar {}
extension GGUFValue: ConfigScalar {}

/// Reads keys of one source; absent (or JSON null) gives the default, a value of the wrong kind is an error.
struct ConfigReader {
    let file: String
    let lookup: (String) -> (any ConfigScalar)?

    init(file: String, json: JSONValue) {
        self.file = file
        lookup = { key in
            guard let value = json[key], value != .null else { return nil }
            return value
        }
    }

    init(file: String, metadata: [String: GGUFValue]) {
        self.file = file
        lookup = { metadata[$0] }
    }

    func error(_ key: String, _ reason: String) -> ModelError {
        .invalidConfig(file: file, key: key, reason: reason)
    }

    func has(_ key: String) -> Bool { lookup(key) != nil }

    func int(_ key: String, default fallback: Int? = nil) throws -> Int {
        guard let value = lookup(key) else {
            if let fallback { return fallback }
            throw error(key, "missing")
        }
        guard let v = value.int else { throw error(key, "expected an integer, found \(value)") }
        return v
    }

    func double(_ key: String, default fallback: Double? = nil) throws -> Double {
        guard let value = lookup(key) else {
            if let fallback { return fallback }
            throw error(key, "missing")
        }
        guard let v = value.double, v.isFinite else { throw error(key, "expected a finite number, found \(value)") }
        return v
    }

    func string(_ key: String) throws -> String? {
        guard let value = lookup(key) else { return nil }
        guard let v = value.string else { throw error(key, "expected a string, found \(value)") }
        return v
    }

    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = lookup(key) else { return fallback }
        guard let v = value.bool else { throw error(key, "expected a boolean, found \(value)") }
        return v
    }
}
