#if canImport(Glibc)
import Glibc
#endif

/// How much of a memory region this process has resident (present in its own page tables), read from
/// /proc/self/pagemap. Unlike mincore(2), this does not count pages that other processes on the host brought
/// into the shared page cache, so it measures what this rank really holds. Nil where pagemap is unavailable.
public func residentBytes(of region: UnsafeRawBufferPointer) -> Int? {
    guard let base = region.baseAddress, region.count > 0 else { return 0 }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let first = Int(bitPattern: base) / page, last = (Int(bitPattern: base) + region.count - 1) / page
    let fd = open("/proc/self/pagemap", O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    let chunk = 4096
    var entries = [UInt64](repeating: 0, count: chunk)
    var present = 0, index = first
    while index <= last {
        let n = min(chunk, last - index + 1)
        let got = entries.withUnsafeMutableBytes { pread(fd, $0.baseAddress, n * 8, off_t(index * 8)) }
        guard got == n * 8 else { return nil }
        for i in 0..<n where entries[i] & (1 << 63) != 0 { present += 1 }
        index += n
    }
    return present * page
}
