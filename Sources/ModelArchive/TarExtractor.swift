import CompressNIO
import Foundation
import NIOCore

/// Unpacks a `.tar.gz` (or a plain `.tar`) into an ``ExtractionSink``, streaming: the gzip data is
/// inflated through a fixed window and the tar stream is parsed as it arrives, so neither the
/// compressed nor the unpacked archive is ever held in memory.
enum TarExtractor {
    static func extract(_ file: InputFile, gzipped: Bool, into sink: ExtractionSink) throws {
        let path = sink.archivePath
        let parser = TarParser(sink: sink)
        let inflater = gzipped ? try Inflater(.gzip) : nil
        var produced: Int64 = 0
        let consume = { (bytes: UnsafeRawBufferPointer) throws in
            produced += Int64(bytes.count)
            try parser.consume(bytes)
        }
        let chunkSize = 64 << 10
        var chunk = ByteBufferAllocator().buffer(capacity: chunkSize)
        var offset: Int64 = 0
        do {
            reading: while offset < file.size, parser.wantsMore {
                let count = Int(min(Int64(chunkSize), file.size - offset))
                chunk.clear()
                let read = try chunk.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { buffer in
                    try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]), at: offset)
                }
                guard read == count else { throw ArchiveError.corrupt(path: path, detail: "the file changed while it was read") }
                offset += Int64(count)
                guard let inflater else {
                    try chunk.withUnsafeReadableBytes { try consume($0) }
                    continue
                }
                while chunk.readableBytes > 0, parser.wantsMore {
                    if inflater.reachedEnd {
                        // Another gzip member follows (`cat a.gz b.gz`), or trailing bytes that are ignored.
                        guard chunk.readableBytes < 2 || chunk.getBytes(at: chunk.readerIndex, length: 2) == [0x1F, 0x8B] else {
                            break reading
                        }
                        try inflater.reset()
                    }
                    try inflater.feed(&chunk, output: consume)
                    try sink.checkRatio(produced: produced, consumed: offset, entry: parser.currentEntry ?? "(the whole archive)")
                }
            }
            if let inflater, parser.wantsMore, !inflater.reachedEnd, try !inflater.finish(output: consume) {
                throw ArchiveError.corrupt(path: path, detail: "the gzip data is cut short")
            }
        } catch is Inflater.Refusal {
            throw ArchiveError.corrupt(path: path, detail: "the gzip data is damaged")
        }
        try parser.finish()
    }
}

/// A ustar/pax/GNU tar stream parser fed in arbitrary pieces.
final class TarParser {
    private enum State {
        case header
        case fileData(remaining: Int64, padding: Int)
        case skip(remaining: Int64)
        case metadata(kind: UInt8, remaining: Int, padding: Int)
        case end
    }

    private let sink: ExtractionSink
    private var state = State.header
    private var block: [UInt8] = []
    private var metadata: [UInt8] = []
    private var output: OutputFile?
    private var paxPath: String?
    private var paxLinkPath: String?
    private var paxSize: Int64?
    private var longName: String?
    private var longLinkName: String?
    private var trailingBytes = 0
    /// The entry being unpacked, for messages.
    private(set) var currentEntry: String?

    init(sink: ExtractionSink) {
        self.sink = sink
        block.reserveCapacity(512)
    }

    /// False once the end-of-archive blocks and a bounded amount of padding after them were read.
    var wantsMore: Bool {
        if case .end = state { return trailingBytes < 1 << 20 }
        return true
    }

    func consume(_ bytes: UnsafeRawBufferPointer) throws {
        var index = 0
        while index < bytes.count {
            let available = bytes.count - index
            switch state {
            case .header:
                let take = min(512 - block.count, available)
                block.append(contentsOf: bytes[index..<index + take])
                index += take
                if block.count == 512 {
                    try header(block)
                    block.removeAll(keepingCapacity: true)
                }
            case .fileData(let remaining, let padding):
                let take = Int(min(Int64(available), remaining))
                let piece = UnsafeRawBufferPointer(rebasing: bytes[index..<index + take])
                let name = currentEntry ?? ""
                try sink.account(take, entry: name)
                try output?.write(piece)
                index += take
                if remaining - Int64(take) == 0 {
                    try output?.close()
                    output = nil
                    state = padding > 0 ? .skip(remaining: Int64(padding)) : .header
                } else {
                    state = .fileData(remaining: remaining - Int64(take), padding: padding)
                }
            case .skip(let remaining):
                let take = Int(min(Int64(available), remaining))
                index += take
                state = remaining - Int64(take) == 0 ? .header : .skip(remaining: remaining - Int64(take))
            case .metadata(let kind, let remaining, let padding):
                let take = min(available, remaining)
                metadata.append(contentsOf: bytes[index..<index + take])
                index += take
                if remaining - take == 0 {
                    try applyMetadata(kind)
                    metadata.removeAll()
                    state = padding > 0 ? .skip(remaining: Int64(padding)) : .header
                } else {
                    state = .metadata(kind: kind, remaining: remaining - take, padding: padding)
                }
            case .end:
                trailingBytes += available
                return
            }
        }
    }

    /// Checks the stream ended on an entry boundary.
    func finish() throws {
        switch state {
        case .end:
            return
        case .header where block.isEmpty:
            return  // no end-of-archive blocks; tolerated, as GNU tar does
        default:
            let at = currentEntry.map { " in entry \"\(Excerpt.of($0))\"" } ?? ""
            throw ArchiveError.corrupt(path: sink.archivePath, detail: "the tar data is cut short\(at)")
        }
    }

    private func corrupt(_ detail: String) -> ArchiveError {
        .corrupt(path: sink.archivePath, detail: detail)
    }

    private func header(_ block: [UInt8]) throws {
        if block.allSatisfy({ $0 == 0 }) {
            state = .end
            return
        }
        guard let storedSum = octal(block[148..<156]) else { throw corrupt("a tar header is damaged (bad checksum field)") }
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for (index, byte) in block.enumerated() {
            let value = (148..<156).contains(index) ? 0x20 : byte
            unsigned += Int64(value)
            signed += Int64(Int8(bitPattern: value))
        }
        guard storedSum == unsigned || storedSum == signed else {
            throw corrupt("a tar header fails its checksum (this is not a tar archive, or it is damaged)")
        }
        try sink.countEntry()
        let type = block[156]
        let isUstar = block[257..<263].elementsEqual(Array("ustar\0".utf8))
        var name = cString(block[0..<100])
        if isUstar {
            let prefix = cString(block[345..<500])
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        if let longName { name = longName }
        if let paxPath { name = paxPath }
        var linkName = cString(block[157..<257])
        if let longLinkName { linkName = longLinkName }
        if let paxLinkPath { linkName = paxLinkPath }
        guard let headerSize = number(block[124..<136]), headerSize >= 0 else {
            throw corrupt("the tar header of \"\(Excerpt.of(name))\" has a damaged size field")
        }
        // Sizes come from the archive (octal, GNU base-256 or pax, up to Int64.max): each use below
        // checks the size against a limit first, and the skip arithmetic reports overflow.
        let size = paxSize ?? headerSize
        let padding = (512 - Int(size % 512)) % 512

        switch type {
        case UInt8(ascii: "x"), UInt8(ascii: "L"), UInt8(ascii: "K"):
            guard size <= Self.maxMetadataSize, let length = Int(exactly: size) else {
                throw corrupt("a tar metadata header is over 1 MiB")
            }
            try sink.account(size, entry: "(tar metadata)")
            state = length > 0 ? .metadata(kind: type, remaining: length, padding: padding) : .header
            return
        case UInt8(ascii: "g"), UInt8(ascii: "V"):
            try sink.account(size, entry: "(tar metadata)")
            state = try skipping(size, padding: padding, entry: "(tar metadata)")
            return
        default:
            break
        }
        currentEntry = name
        defer { clearPendingMetadata() }
        switch type {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"):
            let components = try sink.components(of: name)
            if name.hasSuffix("/"), size == 0 {
                try sink.makeDirectory(components, entry: name)
                state = .header
                return
            }
            try sink.checkDeclaredSize(size, entry: name)
            output = try sink.createFile(components, entry: name)
            if size > 0 {
                state = .fileData(remaining: size, padding: padding)
            } else {
                try output?.close()
                output = nil
                state = .header
            }
        case UInt8(ascii: "5"):
            try sink.makeDirectory(try sink.components(of: name), entry: name)
            try sink.account(size, entry: name)
            state = try skipping(size, padding: padding, entry: name)
        case UInt8(ascii: "1"):
            throw sink.refuse(name, .hardLink(target: linkName))
        case UInt8(ascii: "2"):
            throw sink.refuse(name, .symbolicLink(target: linkName))
        case UInt8(ascii: "3"), UInt8(ascii: "4"), UInt8(ascii: "6"):
            throw sink.refuse(name, .specialFile)
        default:
            throw ArchiveError.unsupported(path: sink.archivePath, entry: name,
                                           detail: "tar entry type \"\(Excerpt.of(String(Unicode.Scalar(type))))\"")
        }
    }

    /// Metadata entries (pax headers, GNU long names) are read into memory, so they are capped.
    static let maxMetadataSize: Int64 = 1 << 20

    /// The state that skips `size` data bytes and their padding to the next 512-byte block.
    private func skipping(_ size: Int64, padding: Int, entry: String) throws -> State {
        guard size > 0 else { return .header }
        let (remaining, overflow) = size.addingReportingOverflow(Int64(padding))
        guard !overflow else { throw corrupt("entry \"\(Excerpt.of(entry))\" declares a size of \(size) bytes, past any file") }
        return .skip(remaining: remaining)
    }

    private func applyMetadata(_ kind: UInt8) throws {
        switch kind {
        case UInt8(ascii: "L"):
            longName = cString(metadata[...])
        case UInt8(ascii: "K"):
            longLinkName = cString(metadata[...])
        default:
            try parsePax()
        }
    }

    /// pax records: `"<length> <key>=<value>\n"`, the length counting the whole record.
    ///
    /// The length is the archive's word: it is checked to lie inside the header, after the space and
    /// past the `=`, before any slice is taken.
    private func parsePax() throws {
        var index = 0
        while index < metadata.count {
            guard let space = metadata[index...].firstIndex(of: UInt8(ascii: " ")), space - index <= 20,
                  let length = Int(String(decoding: metadata[index..<space], as: UTF8.self)),
                  length > 0, length <= metadata.count - index, space < index + length,
                  let equals = metadata[space..<(index + length)].firstIndex(of: UInt8(ascii: "=")),
                  equals < index + length - 1 else {
                if metadata[index...].allSatisfy({ $0 == 0 }) { return }
                throw corrupt("a pax header is damaged")
            }
            let key = String(decoding: metadata[(space + 1)..<equals], as: UTF8.self)
            let valueBytes = metadata[(equals + 1)..<(index + length - 1)]
            guard let value = String(bytes: valueBytes, encoding: .utf8) else { throw corrupt("a pax header is not UTF-8") }
            switch key {
            case "path": paxPath = value
            case "linkpath": paxLinkPath = value
            case "size":
                guard let size = Int64(value), size >= 0 else { throw corrupt("a pax header has a bad size") }
                paxSize = size
            default: break
            }
            index += length
        }
    }

    private func clearPendingMetadata() {
        paxPath = nil
        paxLinkPath = nil
        paxSize = nil
        longName = nil
        longLinkName = nil
    }

    private func cString(_ bytes: ArraySlice<UInt8>) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
        return String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
    }

    /// An octal field (NUL- or space-terminated) or a GNU base-256 one (high bit set).
    private func number(_ field: ArraySlice<UInt8>) -> Int64? {
        if let first = field.first, first & 0x80 != 0 {
            guard first == 0x80 else { return nil }
            var value: Int64 = 0
            for byte in field.dropFirst() {
                guard value < Int64.max >> 8 else { return nil }
                value = value << 8 | Int64(byte)
            }
            return value
        }
        return octal(field)
    }

    private func octal(_ field: ArraySlice<UInt8>) -> Int64? {
        var value: Int64 = 0
        var digits = 0
        for byte in field {
            if byte == 0 || byte == UInt8(ascii: " ") {
                if digits > 0 { break } else { continue }
            }
            guard (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(byte), value < Int64.max >> 3 else { return nil }
            value = value << 3 | Int64(byte - UInt8(ascii: "0"))
            digits += 1
        }
        return value
    }
}
