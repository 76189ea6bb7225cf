// Resident weight memory of one rank, measured: pages of the rank's own file mapping present in its page table
// (/proc/self/pagemap) after a forward pass, plus the anonymous memory its load allocated; against the plan.
import Foundation
import TesseraFormats
import TesseraModels
import TesseraParallel
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A rank alone: collectives do no communication (sums stay partial, gathers fill only this rank's part), so a
/// forward pass touches exactly this rank's weights.
final class LoneRank: TensorParallelGroup, @unchecked Sendable {
    let rank: Int, size: Int
    init(rank: Int, size: Int) { self.rank = rank; self.size = size }
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, counts: [Int]) throws {
        output.update(repeating: 0)
        let start = counts[..<rank].reduce(0, +)
        for i in 0..<input.count { output[start + i] = input[i] }
    }
}

final class ShardMemoryTests: XCTestCase {
    /// SmolLM2 at tp 4, each rank on its own fresh mapping of a private copy of the file (so no other process
    /// keeps pages cached), page cache dropped before loading and before the forward pass, no read-ahead.
    func testResidentWeightsStayAtTheShare() throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-tp-\(getpid()).gguf").path
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: try Models.smolLM2(), toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        for tp in [4] {
            let plan = try TensorParallelPlan(source: ModelSource.open(path: copy), size: tp)
            for rank in 0..<tp {
                let m = try measure(copy, plan: plan, rank: rank)
                let planned = plan[rank].weights.total, measured = m.mapped + m.owned
                print("SmolLM2 tp \(tp) rank \(rank): planned \(plan[rank].weights); measured \(measured >> 10) KiB "
                    + "= \(m.mapped >> 10) KiB mapped + \(m.owned >> 10) KiB owned; o/down pages mapped \(m.rowParallel >> 10) KiB")
                XCTAssertLessThanOrEqual(abs(measured - planned), planned / 10, "tp \(tp) rank \(rank): resident vs planned")
                // o and down were read with pread: at most the two edge pages each tensor shares with a neighbour
                XCTAssertLessThanOrEqual(m.rowParallel, 2 * 2 * plan.layout.layers.count * page, "tp \(tp) rank \(rank)")
            }
        }
    }

    /// Loads and runs rank `rank` alone; returns bytes of the mapping's data section present in the page table,
    /// the anonymous memory the load added, and the present bytes of the o/down tensors.
    func measure(_ path: String, plan: TensorParallelPlan, rank: Int) throws -> (mapped: Int, owned: Int, rowParallel: Int) {
        releaseFreedHeap()
        try dropPageCache(path)
        let file = try GGUFFile(path: path)
        let bytes = file.fileBytes
        madvise(UnsafeMutableRawPointer(mutating: bytes.baseAddress!), bytes.count, MADV_RANDOM)
        let before = try anonymousResident()
        let model = try TensorParallel.load(.gguf(file), plan: plan, group: LoneRank(rank: rank, size: plan.size),
                                            options: LoadOptions(maxBatchTokens: 8)).model
        let owned = try anonymousResident() - before
        try dropPageCache(path)      // the pread pages: a later fault must not map them as neighbours
        let cache = try model.makeCache(sequences: 1, contextLength: 8)
        _ = try model.forward(Batch(tokens: [1, 504, 3094, 2379, 314]), cache: cache)
        // every page of the file mapped in this process: the shared mapping's data section and the isolated
        // mappings of the rank's slices (the embedding table aside: lookups read single rows of it)
        let mapped = try presentBytes(UnsafeRawBufferPointer(rebasing: bytes[file.dataOffset...]))
            + file.residentIsolatedBytes(excluding: [plan.layout.embedding])
        var rowParallel = 0
        for layer in plan.layout.layers {
            for spec in layer.linears {
                guard case .rowParallel = spec.sharding else { continue }
                rowParallel += try presentBytes(file.view(spec.name).data)
            }
        }
        return (mapped, owned, rowParallel)
    }

    /// glibc's malloc_trim(0) (not in the Glibc module): freed heap pages go back to the system, so the next rank's
    /// allocations show in RssAnon instead of reusing them.
    func releaseFreedHeap() {
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }

    /// Writes back and evicts the file's cached pages that no mapping holds.
    func dropPageCache(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FormatError(path: path, reason: "cannot open") }
        defer { close(fd) }
        fsync(fd)
        XCTAssertEqual(posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED)), 0)
    }

    /// Bytes of the pages overlapping `range` that are present in this process's page table.
    func presentBytes(_ range: UnsafeRawBufferPointer) throws -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let address = Int(bitPattern: range.baseAddress!)
        let first = address / page, end = (address + range.count + page - 1) / page
        let fd = open("/proc/self/pagemap", O_RDONLY)
        guard fd >= 0 else { throw FormatError(path: "/proc/self/pagemap", reason: "cannot open") }
        defer { close(fd) }
        var entries = [UInt64](repeating: 0, count: end - first)     // bit 63: page present
        let wanted = entries.count * 8
        let read = entries.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, off_t(first * 8)) }
        guard read == wanted else { throw FormatError(path: "/proc/self/pagemap", reason: "short read") }
        return entries.filter { $0 >> 63 == 1 }.count * page
    }

    /// `RssAnon` of /proc/self/status, in bytes.
    func anonymousResident() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) else {
            throw FormatError(path: "/proc/self/status", reason: "no RssAnon line")
        }
        return kb * 1024
    }

    /// The pread column copy equals the same columns taken from the mapping, for F32 and Q4_1, from a file and from
    /// an in-memory store; a cut inside a block is refused with the tensor named.
    func testColumnCopyMatchesTheMapping() throws {
        let smol = try GGUFFile(path: try Models.smolLM2())
        let stories = try GGUFFile(path: Models.stories260KGGUF)
        let inMemory = try GGUFFile(bytes: Array(stories.fileBytes), path: "in-memory.gguf")
        for (store, name, columns) in [(smol, "blk.3.ffn_down.weight", 320..<640), (smol, "blk.0.attn_output.weight", 384..<576),
                                       (stories, "blk.1.ffn_down.weight", 22..<44), (inMemory, "blk.1.ffn_down.weight", 150..<172)] {
            let view = try store.view(name)
            let slice = try XCTUnwrap(view.columnSliceBytes(columns))
            let start = try XCTUnwrap(view.info.type.byteCount(elements: columns.lowerBound))
            var copied = [UInt8](repeating: 0, count: view.info.rowCount * slice)
            try copied.withUnsafeMutableBytes { try view.copyColumns(columns, into: $0) }
            var expected: [UInt8] = []
            for r in 0..<view.info.rowCount {
                expected += view.data[r * view.info.rowBytes + start ..< r * view.info.rowBytes + start + slice]
            }
            XCTAssertEqual(copied, expected, "\(name) columns \(columns)")
        }
        let down = try smol.view("blk.0.ffn_down.weight")
        var sink = [UInt8](repeating: 0, count: 1 << 20)
        XCTAssertThrowsError(try sink.withUnsafeMutableBytes { try down.copyColumns(16..<48, into: $0) }) { error in
            XCTAssertTrue("\(error)".contains("columns 16..<48 of tensor 'blk.0.ffn_down.weight' (Q4_1"), "\(error)")
        }
    }
}
