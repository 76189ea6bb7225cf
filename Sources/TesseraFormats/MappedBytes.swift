#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The read-only bytes of a whole file, mmap'd (or, for tests and fuzzing, a private in-memory copy).
/// Unmapped when the last reference goes away; views into it are valid only while it is alive.
final class MappedBytes: @unchecked Sendable {
    let buffer: UnsafeRawBufferPointer
    private let isMapped: Bool
    /// The mapped file and its identity when mapped (nil for in-memory copies), so readers can pread the same bytes.
    let file: (path: String, device: UInt64, inode: UInt64)?

    /// Maps `path` read-only. Missing path, directory, unreadable or empty file -> `FormatError`.
    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FormatError(path: path, reason: MappedBytes.errnoText(errno, action: "cannot open")) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FormatError(path: path, reason: MappedBytes.errnoText(errno, action: "cannot stat")) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FormatError(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        guard size > 0 else { throw FormatError(path: path, reason: "empty file (0 bytes)") }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw FormatError(path: path, reason: MappedBytes.errnoText(errno, action: "cannot mmap \(size) bytes"))
        }
        buffer = UnsafeRawBufferPointer(start: UnsafeRawPointer(base), count: size)
        isMapped = true
        file = (path, UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// A private copy of `bytes` (aligned like a mapping), for in-memory parsing.
    init(copying bytes: [UInt8]) {
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress { storage.copyMemory(from: s, byteCount: src.count) }
        }
        buffer = UnsafeRawBufferPointer(start: UnsafeRawPointer(storage), count: bytes.count)
        isMapped = false
        file = nil
    }

    deinit {
        guard let base = buffer.baseAddress else { return }
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), buffer.count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    static func errnoText(_ code: Int32, action: String) -> String {
        let text = String(cString: strerror(code))
        return code == ENOENT ? "no such file or directory" : "\(action): \(text)"
    }
}

/// The owner of weight bytes that can hand back the physical pages of a range once a repacked copy replaces them:
/// a file mapping always can (its pages fault back in from the file if read again); an owned buffer only when its
/// owner marked it as never read again (`AlignedBuffer.discardable`).
public protocol FileBackedPages: AnyObject {
    /// Drops the resident pages wholly inside `range` (a part of this owner's bytes); false when this owner keeps
    /// them (an in-memory copy, a buffer not marked discardable).
    @discardableResult func releasePages(_ range: UnsafeRawBufferPointer) -> Bool
}

/// MADV_DONTNEED on the whole pages inside `range` (a private file mapping: they re-read from the file; anonymous
/// memory: they read back as zeros).
func releaseMappedPages(_ range: UnsafeRawBufferPointer) {
    guard let base = range.baseAddress, range.count > 0 else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = (Int(bitPattern: base) + page - 1) / page * page, end = (Int(bitPattern: base) + range.count) / page * page
    guard end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(pointer, end - start, MADV_DONTNEED)
}

extension MappedBytes: FileBackedPages {
    func releasePages(_ range: UnsafeRawBufferPointer) -> Bool {
        if isMapped { releaseMappedPages(range) }
        return isMapped
    }
}
