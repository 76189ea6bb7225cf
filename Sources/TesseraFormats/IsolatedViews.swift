#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A page-aligned range of a file mapped on its own. Faults in it (and the kernel's fault-around, which maps
/// neighbouring cached pages) stay inside the range, so a rank that maps only its slices holds only its slices.
final class MappedRegion: @unchecked Sendable {
    let name: String
    let base: UnsafeMutableRawPointer
    let length: Int
    /// The bytes asked for, inside the page-aligned mapping.
    let bytes: UnsafeRawBufferPointer

    init(path: String, offset: Int, count: Int, name: String) throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page, end = offset + count
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FormatError(path: path, reason: MappedBytes.errnoText(errno, action: "cannot open")) }
        defer { close(fd) }
        length = max(end - start, 1)
        guard let p = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, off_t(start)), p != MAP_FAILED else {
            throw FormatError(path: path, reason: MappedBytes.errnoText(errno, action: "cannot mmap \(length) bytes of '\(name)'"))
        }
        base = p; self.name = name
        bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(p) + (offset - start), count: count)
    }

    deinit { munmap(base, length) }
}

extension MappedRegion: FileBackedPages {
    func releasePages(_ range: UnsafeRawBufferPointer) -> Bool {
        releaseMappedPages(range)
        return true
    }
}

/// The isolated regions a store has handed out, for measuring what a rank holds.
final class RegionRegistry: Sendable {
    private struct Entry: @unchecked Sendable { weak var region: MappedRegion? }
    private let entries = Mutex<[Entry]>([])

    func add(_ region: MappedRegion) { entries.withLock { $0.append(Entry(region: region)) } }

    /// Resident bytes of the live regions whose tensor name passes `include`.
    func residentBytes(where include: (String) -> Bool) -> Int {
        let live = entries.withLock { $0.compactMap(\.region) }
        return live.filter { include($0.name) }.reduce(0) {
            $0 + (TesseraFormats.residentBytes(of: UnsafeRawBufferPointer(start: UnsafeRawPointer($1.base), count: $1.length)) ?? 0)
        }
    }
}

extension TensorStore {
    /// Stores that cannot map ranges separately (safetensors sets, in-memory stores) give the ordinary view.
    public func isolatedView(_ name: String, rows: Range<Int>?) throws -> TensorView {
        try rows.map { try view(name, rows: $0) } ?? view(name)
    }
}
