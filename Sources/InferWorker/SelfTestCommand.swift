import ArgumentParser
import Foundation
import TesseraCollectives

/// `infer-worker selftest`: every collective, for every element type, at the given sizes, checked on each rank
/// against values the rank computes independently (each rank knows what every peer contributes).
struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest", abstract: "Check every collective on the running ranks.")

    @Option(help: "Comma-separated buffer sizes in bytes (k/m suffixes allowed).")
    var sizes = "0,1,1001,1m,64m"

    func run() throws {
        let byteSizes = try sizes.split(separator: ",").map { text in
            guard let n = parseMessageSize(String(text)) else { throw ValidationError("bad size '\(text)': use bytes, e.g. 4, 64k, 1m") }
            return n
        }
        WorkerSession.run { runtime in
            let world = runtime.world
            var checks = 0
            for bytes in byteSizes {
                checks += try CollectiveChecks<Float>(world).run(bytes: bytes)
                checks += try CollectiveChecks<Float16>(world).run(bytes: bytes)
                checks += try CollectiveChecks<BFloat16>(world).run(bytes: bytes)
                checks += try CollectiveChecks<Int32>(world).run(bytes: bytes)
                checks += try CollectiveChecks<Int64>(world).run(bytes: bytes)
                checks += try CollectiveChecks<UInt8>(world).run(bytes: bytes)
            }
            checks += try checkOverlap(world)
            var total = [Int64(checks)]
            try total.withUnsafeMutableBufferPointer { try world.allReduce($0, op: .sum) }
            if world.rank == 0 {
                print("collectives selftest: \(total[0]) checks passed on \(world.size) ranks (sizes \(sizes) bytes, 6 element types)")
            }
        }
    }
}

/// Element types the checks use: small integers are exact in every one of them, so sums are exact too.
protocol CheckScalar: MPIScalar, Equatable {
    init(small: Int)
    static var label: String { get }
}
extension Float: CheckScalar { init(small: Int) { self = Float(small) }; static var label: String { "f32" } }
extension Float16: CheckScalar { init(small: Int) { self = Float16(small) }; static var label: String { "f16" } }
extension BFloat16: CheckScalar { init(small: Int) { self = BFloat16(Float(small)) }; static var label: String { "bf16" } }
extension Int32: CheckScalar { init(small: Int) { self = Int32(small) }; static var label: String { "i32" } }
extension Int64: CheckScalar { init(small: Int) { self = Int64(small) }; static var label: String { "i64" } }
extension UInt8: CheckScalar { init(small: Int) { self = UInt8(small) }; static var label: String { "u8" } }

struct CollectiveChecks<T: CheckScalar> {
    let comm: Communicator
    /// What rank r contributes at index i is `table[r][i % period]`: small (0...12), so a sum over 8 ranks stays
    /// exact in bf16 and u8. The period keeps expected values cheap to compute for 64 MiB buffers.
    let period = 13
    let table: [[T]]
    /// Expected reduction results per op, by `i % period`.
    let reduced: [[T]]

    init(_ comm: Communicator) {
        self.comm = comm
        let raw = (0..<comm.size).map { r in (0..<13).map { i in (r &* 7 &+ i &* 3 &+ 1) % 13 } }
        table = raw.map { $0.map { T(small: $0) } }
        reduced = ReduceOp.allCases.map { op in
            (0..<13).map { i in
                let column = raw.map { $0[i] }
                switch op {
                case .sum: return T(small: column.reduce(0, +))
                case .max: return T(small: column.max()!)
                case .min: return T(small: column.min()!)
                }
            }
        }
    }

    @inline(__always) func value(_ r: Int, _ i: Int) -> T { table[r][i % period] }
    func expected(_ op: ReduceOp) -> (Int) -> T {
        let row = reduced[ReduceOp.allCases.firstIndex(of: op)!], period = self.period
        return { row[$0 % period] }
    }

    func fill(_ count: Int, rank: Int, offset: Int = 0) -> [T] {
        let row = table[rank]
        var out = [T](repeating: row[0], count: count)
        var k = offset % period
        for i in 0..<count { out[i] = row[k]; k += 1; if k == period { k = 0 } }
        return out
    }

    func verify(_ got: [T], _ what: String, _ want: (Int) -> T) throws {
        for i in got.indices where got[i] != want(i) {
            throw CheckFailure("\(what) [\(T.label), \(got.count) elements] wrong at index \(i): got \(got[i]), want \(want(i))")
        }
    }

    var me: Int { comm.rank }
    var size: Int { comm.size }

    /// Per-rank element counts for `n` elements split over the group (uneven when n % size != 0).
    func split(_ n: Int) -> [Int] { (0..<comm.size).map { n / comm.size + ($0 < n % comm.size ? 1 : 0) } }

    func run(bytes: Int) throws -> Int {
        let n = bytes / MemoryLayout<T>.stride + (bytes == 1 ? 1 : 0)   // "1 byte" means one element
        try comm.barrier()
        return try broadcasts(n) + allReduces(n) + gathers(n) + reduceScatters(n) + pointToPoint(n) + rings(n)
            + nonBlockingAllReduce(n)
    }

    /// Broadcast from the last rank.
    func broadcasts(_ n: Int) throws -> Int {
        var checks = 0
        let root = size - 1
        var b = me == root ? fill(n, rank: root) : [T](repeating: T(small: 0), count: n)
        try b.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
        try verify(b, "broadcast", { self.value(root, $0) }); checks += 1
        return checks
    }

    /// All-reduce in place and out of place, each op.
    func allReduces(_ n: Int) throws -> Int {
        var checks = 0
        // all-reduce: in place and out of place, each op
        for op in ReduceOp.allCases {
            var x = fill(n, rank: me)
            try x.withUnsafeMutableBufferPointer { try comm.allReduce($0, op: op) }
            try verify(x, "all-reduce(\(op))", expected(op))
            let input = fill(n, rank: me)
            var out = [T](repeating: T(small: 0), count: n)
            try input.withUnsafeBufferPointer { i in try out.withUnsafeMutableBufferPointer { try comm.allReduce(i, into: $0, op: op) } }
            try verify(out, "all-reduce(\(op), out of place)", expected(op))
            checks += 2
        }
        return checks
    }

    /// All-gather with equal and with variable counts; gather to rank 0 (equal) and to the last rank (variable).
    func gathers(_ n: Int) throws -> Int {
        var checks = 0
        let per = n / size, counts = split(n), root = size - 1
        let starts = counts.indices.map { counts[..<$0].reduce(0, +) }
        // all-gather, equal counts: each rank contributes n / size elements
        var gathered = [T](repeating: T(small: 0), count: per * size)
        try fill(per, rank: me).withUnsafeBufferPointer { i in try gathered.withUnsafeMutableBufferPointer { try comm.allGather(i, into: $0) } }
        try verify(gathered, "all-gather", { self.value($0 / Swift.max(per, 1), $0 % Swift.max(per, 1)) }); checks += 1

        // all-gather, variable counts (uneven split of n)
        var gv = [T](repeating: T(small: 0), count: n)
        try fill(counts[me], rank: me, offset: starts[me]).withUnsafeBufferPointer { i in
            try gv.withUnsafeMutableBufferPointer { try comm.allGather(i, into: $0, counts: counts) }
        }
        try verify(gv, "all-gather(v)", { i in self.value(self.owner(of: i, starts: starts, counts: counts), i) })
        checks += 1

        // gather to rank 0 (equal), and to the last rank (variable)
        var g = [T](repeating: T(small: 0), count: me == 0 ? per * size : 0)
        try fill(per, rank: me).withUnsafeBufferPointer { i in try g.withUnsafeMutableBufferPointer { try comm.gather(i, into: me == 0 ? $0 : nil, root: 0) } }
        if me == 0 { try verify(g, "gather", { self.value($0 / Swift.max(per, 1), $0 % Swift.max(per, 1)) }) }
        var gvr = [T](repeating: T(small: 0), count: me == root ? n : 0)
        try fill(counts[me], rank: me, offset: starts[me]).withUnsafeBufferPointer { i in
            try gvr.withUnsafeMutableBufferPointer { try comm.gather(i, into: me == root ? $0 : nil, counts: counts, root: root) }
        }
        if me == root { try verify(gvr, "gather(v)", { i in self.value(self.owner(of: i, starts: starts, counts: counts), i) }) }
        checks += 2
        return checks
    }

    /// Reduce-scatter with variable counts and in equal blocks.
    func reduceScatters(_ n: Int) throws -> Int {
        var checks = 0
        let per = n / size, counts = split(n)
        let starts = counts.indices.map { counts[..<$0].reduce(0, +) }
        // reduce-scatter, variable counts: rank r gets the sum over ranks of its slice
        var rs = [T](repeating: T(small: 0), count: counts[me])
        try fill(n, rank: me).withUnsafeBufferPointer { i in try rs.withUnsafeMutableBufferPointer { try comm.reduceScatter(i, into: $0, counts: counts, op: .sum) } }
        try verify(rs, "reduce-scatter(v)", { [e = expected(.sum)] in e(starts[me] + $0) }); checks += 1

        // reduce-scatter, equal blocks
        var rsb = [T](repeating: T(small: 0), count: per)
        try fill(per * size, rank: me).withUnsafeBufferPointer { i in try rsb.withUnsafeMutableBufferPointer { try comm.reduceScatter(i, into: $0, op: .max) } }
        try verify(rsb, "reduce-scatter(block)", { [e = expected(.max)] in e(me * per + $0) }); checks += 1
        return checks
    }

    /// Blocking send/recv between pairs.
    func pointToPoint(_ n: Int) throws -> Int {
        var checks = 0
        // point to point: pairs (0,1), (2,3)...; blocking send/recv ordered so no pair can deadlock
        if size > 1 {
            let peer = me % 2 == 0 ? me + 1 : me - 1
            if peer < size {
                var got = [T](repeating: T(small: 0), count: n)
                let mine = fill(n, rank: me)
                if me % 2 == 0 {
                    try mine.withUnsafeBufferPointer { try comm.send($0, to: peer, tag: 7) }
                    try got.withUnsafeMutableBufferPointer { try comm.recv($0, from: peer, tag: 8) }
                } else {
                    try got.withUnsafeMutableBufferPointer { try comm.recv($0, from: peer, tag: 7) }
                    try mine.withUnsafeBufferPointer { try comm.send($0, to: peer, tag: 8) }
                }
                try verify(got, "send/recv", { self.value(peer, $0) }); checks += 1
            }
        }
        return checks
    }

    /// Ring exchange with sendrecv and with isend/irecv.
    func rings(_ n: Int) throws -> Int {
        var checks = 0
        // ring exchange with sendrecv and with isend/irecv
        let next = (me + 1) % size, prev = (me - 1 + size) % size
        var ring = [T](repeating: T(small: 0), count: n)
        try fill(n, rank: me).withUnsafeBufferPointer { o in
            try ring.withUnsafeMutableBufferPointer { try comm.sendRecv(o, to: next, receiving: $0, from: prev) }
        }
        try verify(ring, "sendrecv", { self.value(prev, $0) })
        let outgoing = fill(n, rank: me)
        var incoming = [T](repeating: T(small: 0), count: n)
        try outgoing.withUnsafeBufferPointer { o in
            try incoming.withUnsafeMutableBufferPointer { i in
                let r = try comm.irecv(i, from: prev, tag: 3)
                let s = try comm.isend(o, to: next, tag: 3)
                try Request.waitAll([s, r])
            }
        }
        try verify(incoming, "isend/irecv", { self.value(prev, $0) })
        checks += 2
        return checks
    }

    /// Non-blocking all-reduce.
    func nonBlockingAllReduce(_ n: Int) throws -> Int {
        var ia = fill(n, rank: me)
        try ia.withUnsafeMutableBufferPointer { buffer in
            let r = try comm.iallReduce(buffer, op: .sum)
            try r.wait()
        }
        try verify(ia, "iallreduce", expected(.sum))
        return 1
    }

    func owner(of i: Int, starts: [Int], counts: [Int]) -> Int {
        for r in counts.indices where i >= starts[r] && i < starts[r] + counts[r] { return r }
        return 0
    }
}

/// Non-blocking all-reduce overlapped with computation: the result and the computation must both be right, and
/// the request must complete while this rank keeps computing (polling with `test`).
func checkOverlap(_ comm: Communicator) throws -> Int {
    let n = 1 << 20
    var buffer = [Float](repeating: Float(comm.rank + 1), count: n)
    var work = [Float](repeating: 0.5, count: 1 << 16)
    var polls = 0, done = false, sum: Float = 0
    try buffer.withUnsafeMutableBufferPointer { b in
        let request = try comm.iallReduce(b, op: .sum)
        while !done {
            for i in work.indices { work[i] = work[i] * 0.999 + 0.001 }   // compute while the reduction runs
            sum += work[0]
            polls += 1
            done = try request.test()
        }
    }
    let want = Float(comm.size * (comm.size + 1) / 2)
    guard buffer.allSatisfy({ $0 == want }), sum > 0, polls >= 1 else {
        throw CheckFailure("overlapped iallreduce gave \(buffer[0]), want \(want)")
    }
    return 1
}
