import Foundation
import TesseraTestSupport
import TesseraTopology
import XCTest

final class TopologyTests: XCTestCase {
    let shipped = ["tp1", "tp2", "tp4", "tp8", "pp2", "pp4", "tp2-pp2", "tp2-pp4", "tp4-pp2", "vision2-tp2-pp3"]

    func path(_ name: String) -> String { Repo.root.appendingPathComponent("topologies/\(name).yaml").path }

    func testEveryShippedTopologyLoads() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Repo.root.appendingPathComponent("topologies").path)
            .filter { $0.hasSuffix(".yaml") }
        XCTAssertEqual(Set(files), Set(shipped.map { "\($0).yaml" }))
        for name in shipped { XCTAssertNoThrow(try Topology.load(path: path(name)), name) }
    }

    /// The documented formula: decoder rank r has tpRank r % tp and stage r / tp; vision ranks come after.
    func testRolesFollowTheDocumentedFormula() throws {
        for name in shipped {
            let t = try Topology.load(path: path(name))
            let tp = t.decoder.tensorParallel, pp = t.decoder.pipelineParallel
            XCTAssertEqual(t.worldSize, tp * pp + (t.vision?.ranks ?? 0), name)
            for r in 0..<t.worldSize {
                switch t.role(of: r) {
                case .decoder(let c):
                    XCTAssertLessThan(r, tp * pp)
                    XCTAssertEqual(c.tpRank, r % tp, "\(name) rank \(r)")
                    XCTAssertEqual(c.ppStage, r / tp, "\(name) rank \(r)")
                    XCTAssertEqual(c.tensorParallelGroup, (0..<tp).map { (r / tp) * tp + $0 })
                    XCTAssertEqual(c.pipelineGroup, (0..<pp).map { $0 * tp + r % tp })
                    XCTAssertEqual(c.previousStage, r >= tp ? r - tp : nil)
                    XCTAssertEqual(c.nextStage, r + tp < tp * pp ? r + tp : nil)
                case .vision(let v):
                    XCTAssertGreaterThanOrEqual(r, tp * pp, name)
                    XCTAssertEqual(v.index, r - tp * pp)
                    XCTAssertEqual(v.feeds, Array(0..<tp))
                }
            }
        }
        // The derived ranks every other target asks the topology for.
        for name in shipped {
            let t = try Topology.load(path: path(name))
            let tp = t.decoder.tensorParallel, pp = t.decoder.pipelineParallel
            XCTAssertEqual(t.logitsRank, (pp - 1) * tp, name)
            XCTAssertEqual(t.decoderRanks, 0..<tp * pp, name)
            XCTAssertEqual(t.visionRanks, tp * pp ..< t.worldSize, name)
            for stage in 0..<pp { XCTAssertEqual(Array(t.stageRanks(stage)), (0..<tp).map { stage * tp + $0 }, name) }
            XCTAssertTrue(t.stageRanks(0).contains(t.coordinator), name)
        }
        // The worked example in the documentation.
        let t = try Topology.load(path: path("tp2-pp4"))
        guard case .decoder(let five) = t.role(of: 5) else { return XCTFail("rank 5 should be a decoder rank") }
        XCTAssertEqual([five.ppStage, five.tpRank, five.previousStage, five.nextStage], [2, 1, 3, 7])
    }

    func testLayerRanges() throws {
        let even = try Topology.load(path: path("pp4")).layerRanges(layerCount: 30)
        XCTAssertEqual(even, [0..<8, 8..<16, 16..<23, 23..<30])
        let explicit = try Topology.parse("world_size: 2\ndecoder:\n  pipeline_parallel: 2\n  layers: [3, 2]\n", source: "x.yaml")
        XCTAssertEqual(try explicit.layerRanges(layerCount: 5), [0..<3, 3..<5])
        XCTAssertThrowsError(try explicit.layerRanges(layerCount: 6)) {
            XCTAssertEqual("\($0)", "x.yaml: decoder.layers: stages add up to 5 layers but the model has 6")
        }
        XCTAssertThrowsError(try Topology.load(path: path("pp4")).layerRanges(layerCount: 3))
    }

    func testBrokenTopologiesNameFileKeyAndReason() {
        let cases: [(String, String)] = [
            ("world_size: 4\ndecoder:\n  tensor_parallel: 2\n",
             "bad.yaml: world_size: is 4 but tensor_parallel 2 × pipeline_parallel 1 = 2"),
            ("world_size: 8\ndecoder:\n  tensor_parallel: 2\n  pipeline_parallel: 3\nvision:\n  ranks: 1\n",
             "bad.yaml: world_size: is 8 but tensor_parallel 2 × pipeline_parallel 3 + vision.ranks 1 = 7"),
            ("world_size: 0\ndecoder:\n  tensor_parallel: 1\n", "bad.yaml: world_size: must be at least 1, got 0"),
            ("world_size: 2\ndecoder:\n  tensor_parallel: 0\n", "bad.yaml: decoder.tensor_parallel: must be at least 1, got 0"),
            ("world_size: 2\ndecoder:\n  pipeline_parallel: -2\n", "bad.yaml: decoder.pipeline_parallel: must be at least 1, got -2"),
            ("world_size: 2\ndecoder:\n  tensor_paralel: 2\n",
             "bad.yaml: decoder.tensor_paralel: unknown key; allowed here: layers, pipeline_parallel, tensor_parallel"),
            ("world_size: 1\nranks: 1\ndecoder: {}\n", "bad.yaml: ranks: unknown key; allowed here: coordinator, decoder, vision, world_size"),
            ("world_size: 2\ndecoder:\n  pipeline_parallel: 2\n  layers: [3]\n",
             "bad.yaml: decoder.layers: lists 1 stages but pipeline_parallel is 2"),
            ("world_size: 2\ndecoder:\n  pipeline_parallel: 2\n  layers: [3, 0]\n",
             "bad.yaml: decoder.layers: stage 1 has 0 layers; every stage needs at least 1"),
            ("world_size: 2\ndecoder:\n  pipeline_parallel: 2\n  layers: [3, x]\n", "bad.yaml: decoder.layers[1]: must be an integer, got 'x'"),
            ("world_size: two\ndecoder: {}\n", "bad.yaml: world_size: must be an integer, got 'two'"),
            ("decoder:\n  tensor_parallel: 1\n", "bad.yaml: world_size: is required"),
            ("world_size: 1\n", "bad.yaml: decoder: is required"),
            ("world_size: 2\ncoordinator: 5\ndecoder:\n  tensor_parallel: 2\n", "bad.yaml: coordinator: rank 5 is outside 0..<2"),
            ("world_size: 4\ncoordinator: 2\ndecoder:\n  tensor_parallel: 2\n  pipeline_parallel: 2\n",
             "bad.yaml: coordinator: rank 2 is not in the decoder's first stage (ranks 0..<2)"),
            ("world_size: 3\ncoordinator: 2\ndecoder:\n  tensor_parallel: 2\nvision:\n  ranks: 1\n",
             "bad.yaml: coordinator: rank 2 is not in the decoder's first stage (ranks 0..<2)"),
            ("world_size: 3\ndecoder:\n  tensor_parallel: 2\nvision:\n  ranks: 1\n  mode: pipelined\n",
             "bad.yaml: vision.mode: unknown mode 'pipelined'; use one of data_parallel, tensor_parallel"),
            ("world_size: 3\ndecoder:\n  tensor_parallel: 2\nvision:\n  mode: data_parallel\n", "bad.yaml: vision.ranks: is required in the vision section"),
            ("- 1\n- 2\n", "bad.yaml: must be a mapping of keys to values"),
            ("", "bad.yaml: is empty"),
            ("world_size: [1\n", "bad.yaml: is not valid YAML"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try Topology.parse(text, source: "bad.yaml"), message) { error in
                XCTAssertTrue("\(error)".hasPrefix(message), "got: \(error)\nwant: \(message)")
            }
        }
        XCTAssertThrowsError(try Topology.load(path: "/nonexistent/t.yaml")) {
            XCTAssertEqual("\($0)", "/nonexistent/t.yaml: no such file")
        }
    }
}
