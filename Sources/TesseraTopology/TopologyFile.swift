import Foundation
import Yams

/// Reads topology files (YAML). The schema, every key optional unless marked:
///
///     world_size: 8                 # required: ranks the job runs with (mpirun -n)
///     coordinator: 0                # rank that owns requests (default 0)
///     decoder:                      # required
///       tensor_parallel: 2          # default 1
///       pipeline_parallel: 4        # default 1
///       layers: [8, 8, 7, 7]        # optional explicit layers per stage
///     vision:                       # optional vision-encoder group, on the ranks after the decoder's
///       ranks: 2                    # required in this section
///       mode: data_parallel         # or tensor_parallel (default data_parallel)
///
/// Unknown keys, wrong types and inconsistent numbers fail with the file, the key and the reason.
extension Topology {
    /// Loads and validates the topology at `path`.
    public static func load(path: String) throws -> Topology {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TopologyError(source: path, key: "", reason: FileManager.default.fileExists(atPath: path)
                                ? "cannot be read" : "no such file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TopologyError(source: path, key: "", reason: "is not UTF-8 text")
        }
        return try parse(text, source: path)
    }

    /// Parses topology YAML text; `source` names it in errors.
    public static func parse(_ text: String, source: String) throws -> Topology {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw TopologyError(source: source, key: "", reason: "is not valid YAML: \(error)")
        }
        guard let root else { throw TopologyError(source: source, key: "", reason: "is empty") }
        let top = try Fields(root, path: "", source: source, allowed: ["world_size", "coordinator", "decoder", "vision"])

        let decoderNode = try top.required("decoder")
        let dec = try Fields(decoderNode, path: "decoder", source: source,
                             allowed: ["tensor_parallel", "pipeline_parallel", "layers"])
        let decoder = DecoderGroup(tensorParallel: try dec.int("tensor_parallel") ?? 1,
                                   pipelineParallel: try dec.int("pipeline_parallel") ?? 1,
                                   layersPerStage: try dec.intList("layers"))
        var vision: VisionGroup? = nil
        if let visionNode = top.node("vision") {
            let vis = try Fields(visionNode, path: "vision", source: source, allowed: ["ranks", "mode"])
            guard let ranks = try vis.int("ranks") else {
                throw TopologyError(source: source, key: "vision.ranks", reason: "is required in the vision section")
            }
            var mode = VisionGroup.Mode.dataParallel
            if let name = try vis.string("mode") {
                guard let m = VisionGroup.Mode(rawValue: name) else {
                    throw TopologyError(source: source, key: "vision.mode", reason:
                        "unknown mode '\(name)'; use one of \(VisionGroup.Mode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                mode = m
            }
            vision = VisionGroup(ranks: ranks, mode: mode)
        }
        guard let worldSize = try top.int("world_size") else {
            throw TopologyError(source: source, key: "world_size", reason: "is required")
        }
        return try Topology(source: source, worldSize: worldSize, coordinator: try top.int("coordinator") ?? 0,
                            decoder: decoder, vision: vision)
    }
}

/// A YAML mapping whose keys are checked against the schema, with typed getters that name the key on failure.
private struct Fields {
    let mapping: [String: Node]
    let path: String
    let source: String

    init(_ node: Node, path: String, source: String, allowed: Set<String>) throws {
        self.path = path; self.source = source
        guard let map = node.mapping else {
            throw TopologyError(source: source, key: path, reason: "must be a mapping of keys to values")
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in map {
            guard let key = keyNode.scalar?.string else {
                throw TopologyError(source: source, key: path, reason: "has a key that is not a plain name")
            }
            guard allowed.contains(key) else {
                throw TopologyError(source: source, key: path.isEmpty ? key : "\(path).\(key)", reason:
                    "unknown key; allowed here: \(allowed.sorted().joined(separator: ", "))")
            }
            result[key] = value
        }
        mapping = result
    }

    func qualified(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func node(_ key: String) -> Node? { mapping[key] }

    func required(_ key: String) throws -> Node {
        guard let node = mapping[key] else { throw TopologyError(source: source, key: qualified(key), reason: "is required") }
        return node
    }

    func int(_ key: String) throws -> Int? {
        guard let node = mapping[key] else { return nil }
        return try integer(node, key: qualified(key))
    }

    func string(_ key: String) throws -> String? {
        guard let node = mapping[key] else { return nil }
        guard let s = node.scalar?.string else {
            throw TopologyError(source: source, key: qualified(key), reason: "must be a string")
        }
        return s
    }

    func intList(_ key: String) throws -> [Int]? {
        guard let node = mapping[key] else { return nil }
        guard let items = node.sequence else {
            throw TopologyError(source: source, key: qualified(key), reason: "must be a list of integers")
        }
        return try items.enumerated().map { try integer($0.element, key: "\(qualified(key))[\($0.offset)]") }
    }

    private func integer(_ node: Node, key: String) throws -> Int {
        guard let text = node.scalar?.string, let value = Int(text) else {
            throw TopologyError(source: source, key: key, reason: "must be an integer, got \(describe(node))")
        }
        return value
    }

    private func describe(_ node: Node) -> String {
        if let s = node.scalar?.string { return "'\(s)'" }
        return node.mapping != nil ? "a mapping" : "a list"
    }
}
