import CompressNIO
import Foundation
import NIOCore

/// Unpacks a zip (`.mar`) into an ``ExtractionSink``.
///
/// Written here rather than taken from ZIPFoundation so that every size is checked against the
/// file and the limits before a byte is inflated, a cut-short entry is an error (not a loop), and
/// entries that share compressed bytes (overlapping zip bombs) are refused.
enum ZipExtractor {
    private struct Record {
        var name: String
        var isDirectory: Bool
        var method: UInt16
        var crc: UInt32
        var compressedSize: UInt64
        var uncompressedSize: UInt64
        var localHeaderOffset: UInt64
        var components: [String] = []
        var dataStart: UInt64 = 0
    }

    /// Unpacks the entries `include` admits (all by default); every entry's record is checked either way.
    static func extract(_ file: InputFile, into sink: ExtractionSink, only include: (String) -> Bool = { _ in true }) throws {
        let path = sink.archivePath
        let directory = try centralDirectory(file, path: path, limits: sink.limits)
        var records: [Record] = []
        var offset = 0
        for _ in 0..<directory.count {
            records.append(try record(in: directory.bytes, at: &offset, file: file, sink: sink))
        }
        try checkLayout(&records, file: file, directoryOffset: directory.offset, sink: sink)
        for record in records where include(record.name) {
            if record.isDirectory {
                try sink.makeDirectory(record.components, entry: record.name)
            } else {
                try extractFile(record, from: file, into: sink)
            }
        }
    }

    // MARK: Central directory

    private static func centralDirectory(
        _ file: InputFile, path: String, limits: ExtractionLimits
    ) throws -> (bytes: [UInt8], count: Int, offset: UInt64) {
        func corrupt(_ detail: String) -> ArchiveError { .corrupt(path: path, detail: detail) }
        let tailLength = Int(min(file.size, 22 + 65535))
        let tailStart = file.size - Int64(tailLength)
        let tail = try file.read(count: tailLength, at: tailStart)
        guard tail.count >= 22 else { throw corrupt("it is too short to be a zip") }
        var eocd: Int?
        for index in stride(from: tail.count - 22, through: 0, by: -1)
        where tail.u32(index) == 0x0605_4B50 && index + 22 + Int(tail.u16(index + 20)) == tail.count {
            eocd = index
            break
        }
        guard let eocd else {
            throw corrupt("its end-of-central-directory record is missing (the file is cut short or is not a zip)")
        }
        guard tail.u16(eocd + 4) == 0, tail.u16(eocd + 6) == 0 else {
            throw ArchiveError.unsupported(path: path, entry: nil, detail: "a zip split over several files")
        }
        var count = UInt64(tail.u16(eocd + 10))
        var size = UInt64(tail.u32(eocd + 12))
        var offset = UInt64(tail.u32(eocd + 16))
        var end = UInt64(tailStart) + UInt64(eocd)
        if count == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
            guard eocd >= 20, tail.u32(eocd - 20) == 0x0706_4B50 else {
                throw corrupt("its ZIP64 end-of-central-directory locator is missing")
            }
            // The locator's offset is the archive's word (up to 2^64 - 1): the record must end
            // before the locator, checked without overflow.
            let recordOffset = tail.u64(eocd - 20 + 8)
            let (recordEnd, overflow) = recordOffset.addingReportingOverflow(56)
            guard !overflow, recordEnd <= end - 20, let recordStart = Int64(exactly: recordOffset) else {
                throw corrupt("its ZIP64 end-of-central-directory record is out of place")
            }
            let record = try file.read(count: 56, at: recordStart)
            guard record.count == 56, record.u32(0) == 0x0606_4B50 else {
                throw corrupt("its ZIP64 end-of-central-directory record is missing")
            }
            count = record.u64(32)
            size = record.u64(40)
            offset = record.u64(48)
            end = recordOffset
        }
        guard let entryCount = Int(exactly: count), entryCount <= limits.maxEntryCount else {
            throw ArchiveError.tooManyEntries(path: path, limit: limits.maxEntryCount)
        }
        let (smallestSize, overflow) = count.multipliedReportingOverflow(by: 46)
        guard size <= maxCentralDirectorySize, offset <= end, size <= end - offset, !overflow, size >= smallestSize,
              let byteCount = Int(exactly: size), let start = Int64(exactly: offset) else {
            throw corrupt("its central directory lies outside the file")
        }
        let bytes = try file.read(count: byteCount, at: start)
        guard bytes.count == byteCount else { throw corrupt("its central directory is cut short") }
        return (bytes, entryCount, offset)
    }

    private static func record(in bytes: [UInt8], at offset: inout Int, file: InputFile, sink: ExtractionSink) throws -> Record {
        let path = sink.archivePath
        let corrupt = ArchiveError.corrupt(path: path, detail: "its central directory is damaged")
        guard offset + 46 <= bytes.count, bytes.u32(offset) == 0x0201_4B50 else { throw corrupt }
        let madeBy = bytes.u16(offset + 4)
        let flags = bytes.u16(offset + 8)
        let method = bytes.u16(offset + 10)
        let crc = bytes.u32(offset + 16)
        var compressedSize = UInt64(bytes.u32(offset + 20))
        var uncompressedSize = UInt64(bytes.u32(offset + 24))
        let nameLength = Int(bytes.u16(offset + 28))
        let extraLength = Int(bytes.u16(offset + 30))
        let commentLength = Int(bytes.u16(offset + 32))
        let externalAttributes = bytes.u32(offset + 38)
        var localHeaderOffset = UInt64(bytes.u32(offset + 42))
        let nameStart = offset + 46
        let extraStart = nameStart + nameLength
        let next = extraStart + extraLength + commentLength
        guard next <= bytes.count else { throw corrupt }
        defer { offset = next }

        guard let name = String(bytes: bytes[nameStart..<extraStart], encoding: .utf8) else {
            throw sink.refuse(String(decoding: bytes[nameStart..<extraStart], as: UTF8.self), .invalidName)
        }
        try sink.countEntry()

        // ZIP64: the real sizes and offset, for those fields whose 32-bit value is all ones.
        var extra = extraStart
        while extra + 4 <= extraStart + extraLength {
            let id = bytes.u16(extra)
            let length = Int(bytes.u16(extra + 2))
            var field = extra + 4
            let fieldEnd = field + length
            guard fieldEnd <= extraStart + extraLength else { throw corrupt }
            if id == 0x0001 {
                func next64() throws -> UInt64 {
                    guard field + 8 <= fieldEnd else { throw corrupt }
                    defer { field += 8 }
                    return bytes.u64(field)
                }
                if uncompressedSize == 0xFFFF_FFFF { uncompressedSize = try next64() }
                if compressedSize == 0xFFFF_FFFF { compressedSize = try next64() }
                if localHeaderOffset == 0xFFFF_FFFF { localHeaderOffset = try next64() }
            }
            extra = fieldEnd
        }

        var isDirectory = name.hasSuffix("/")
        let host = madeBy >> 8
        if host == 3 || host == 19 {
            let mode = (externalAttributes >> 16) & 0o170000
            switch mode {
            case 0o120000:
                let target = try symbolicLinkTarget(file, localHeaderOffset, compressedSize, method)
                throw sink.refuse(name, .symbolicLink(target: target))
            case 0o040000:
                isDirectory = true
            case 0, 0o100000:
                break
            default:
                throw sink.refuse(name, .specialFile)
            }
        } else if host == 0, externalAttributes & 0x10 != 0 {
            isDirectory = true
        }
        if flags & 1 != 0 {
            throw ArchiveError.unsupported(path: path, entry: name, detail: "encryption")
        }
        if !isDirectory, method != 0, method != 8 {
            throw ArchiveError.unsupported(path: path, entry: name,
                                           detail: "compression method \(method) (only stored and deflate are read)")
        }
        var record = Record(name: name, isDirectory: isDirectory, method: method, crc: crc,
                            compressedSize: compressedSize, uncompressedSize: uncompressedSize,
                            localHeaderOffset: localHeaderOffset)
        record.components = try sink.components(of: name)
        if !isDirectory, record.components.isEmpty { throw sink.refuse(name, .invalidName) }
        return record
    }

    /// The central directory is read into memory whole, so it is capped (about 1.4 million records).
    private static let maxCentralDirectorySize: UInt64 = 256 << 20

    /// A symbolic link's target, for the refusal message; stored links only, `"?"` when the
    /// archive's offsets do not lead to it (the link is refused either way).
    private static func symbolicLinkTarget(_ file: InputFile, _ headerOffset: UInt64, _ size: UInt64, _ method: UInt16) throws -> String {
        guard method == 0, size <= 4096, let headerStart = Int64(exactly: headerOffset),
              let header = try? file.read(count: 30, at: headerStart),
              header.count == 30, header.u32(0) == 0x0403_4B50,
              let start = dataStart(headerStart, header), let count = Int(exactly: size) else { return "?" }
        let target = try file.read(count: count, at: start)
        return String(decoding: target, as: UTF8.self)
    }

    /// Where an entry's data begins: after the 30-byte local header, its name and its extra field;
    /// `nil` when that passes `Int64.max`.
    private static func dataStart(_ headerOffset: Int64, _ header: [UInt8]) -> Int64? {
        let (start, overflow) = headerOffset.addingReportingOverflow(30 + Int64(header.u16(26)) + Int64(header.u16(28)))
        return overflow ? nil : start
    }

    /// Finds each entry's data, checks it lies inside the file and that no two entries share bytes,
    /// and that the declared sizes fit the limit (actual bytes are counted again while unpacking).
    private static func checkLayout(_ records: inout [Record], file: InputFile, directoryOffset: UInt64, sink: ExtractionSink) throws {
        let path = sink.archivePath
        var declaredTotal: UInt64 = 0
        var spans: [(start: UInt64, end: UInt64, name: String)] = []
        for index in records.indices where !records[index].isDirectory {
            let record = records[index]
            let name = Excerpt.of(record.name)
            guard let headerOffset = Int64(exactly: record.localHeaderOffset),
                  case let header = try file.read(count: 30, at: headerOffset),
                  header.count == 30, header.u32(0) == 0x0403_4B50 else {
                throw ArchiveError.corrupt(path: path, detail: "the local header of \"\(name)\" is missing")
            }
            guard let start = dataStart(headerOffset, header).map(UInt64.init),
                  case let (end, overflow) = start.addingReportingOverflow(record.compressedSize),
                  !overflow, end <= directoryOffset else {
                throw ArchiveError.corrupt(path: path, detail: "the data of \"\(name)\" runs past the end of the file")
            }
            records[index].dataStart = start
            spans.append((record.localHeaderOffset, end, record.name))
            // Each declared size is capped at Int64.max and the sum is checked after every add, so
            // it stays below 2^64.
            declaredTotal += min(record.uncompressedSize, UInt64(Int64.max))
            if declaredTotal > UInt64(clamping: sink.limits.maxTotalBytes) {
                throw ArchiveError.tooLarge(path: path, entry: record.name, limit: sink.limits.maxTotalBytes)
            }
        }
        spans.sort { $0.start < $1.start }
        for (first, second) in zip(spans, spans.dropFirst()) where second.start < first.end {
            throw sink.refuse(second.name, .overlappingData)
        }
    }

    // MARK: Entry data

    private static func extractFile(_ record: Record, from file: InputFile, into sink: ExtractionSink) throws {
        let path = sink.archivePath
        let name = record.name
        let shown = Excerpt.of(name)
        let output = try sink.createFile(record.components, entry: name)
        var crc = CRC32()
        var produced: Int64 = 0
        let write = { (bytes: UnsafeRawBufferPointer) throws in
            produced += Int64(bytes.count)
            if UInt64(produced) > record.uncompressedSize {
                throw ArchiveError.corrupt(
                    path: path, detail: "entry \"\(shown)\" unpacks to more than the \(record.uncompressedSize) bytes it declares")
            }
            try sink.account(bytes.count, entry: name)
            crc.update(bytes)
            try output.write(bytes)
        }
        let chunkSize = 256 << 10
        var chunk = ByteBufferAllocator().buffer(capacity: chunkSize)
        var offset = record.dataStart
        let end = record.dataStart + record.compressedSize
        let inflater = record.method == 8 ? try Inflater(.deflate) : nil
        do {
            while offset < end {
                let count = Int(min(UInt64(chunkSize), end - offset))
                chunk.clear()
                let read = try chunk.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { buffer in
                    try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]), at: Int64(offset))
                }
                guard read == count else { throw ArchiveError.corrupt(path: path, detail: "entry \"\(shown)\" is cut short") }
                offset += UInt64(count)
                if let inflater {
                    try inflater.feed(&chunk, output: write)
                    try sink.checkRatio(produced: produced, consumed: Int64(offset - record.dataStart), entry: name)
                    if inflater.reachedEnd { break }
                } else {
                    try chunk.withUnsafeReadableBytes { try write($0) }
                }
            }
            if let inflater, !inflater.reachedEnd, try !inflater.finish(output: write) {
                throw ArchiveError.corrupt(path: path, detail: "the compressed data of \"\(shown)\" is cut short")
            }
        } catch is Inflater.Refusal {
            throw ArchiveError.corrupt(path: path, detail: "the compressed data of \"\(shown)\" is damaged")
        }
        guard UInt64(produced) == record.uncompressedSize else {
            throw ArchiveError.corrupt(
                path: path, detail: "entry \"\(shown)\" unpacks to \(produced) bytes, not the \(record.uncompressedSize) it declares")
        }
        guard crc.value == record.crc else {
            throw ArchiveError.corrupt(path: path, detail: "entry \"\(shown)\" fails its CRC-32 check")
        }
        try output.close()
    }
}

extension Array where Element == UInt8 {
    func u16(_ offset: Int) -> UInt16 {
        UInt16(self[offset]) | UInt16(self[offset + 1]) << 8
    }

    func u32(_ offset: Int) -> UInt32 {
        UInt32(u16(offset)) | UInt32(u16(offset + 2)) << 16
    }

    func u64(_ offset: Int) -> UInt64 {
        UInt64(u32(offset)) | UInt64(u32(offset + 4)) << 32
    }
}
