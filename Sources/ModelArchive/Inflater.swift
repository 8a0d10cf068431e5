import CompressNIO
import NIOCore

/// Streaming inflate of raw deflate (zip entries) or gzip (`.tar.gz`), with a fixed output window
/// so memory stays bounded whatever the input claims.
final class Inflater {
    private let decompressor: ZlibDecompressor
    private var window: ByteBuffer
    private var empty: ByteBuffer
    /// Set once the compressed stream's end marker has been read.
    private(set) var reachedEnd = false

    init(_ algorithm: ZlibAlgorithm, windowSize: Int = 256 << 10) throws {
        do {
            decompressor = try ZlibDecompressor(algorithm: algorithm)
        } catch {
            throw ArchiveError.io(path: "(memory)", operation: "start decompressing", detail: "\(error)")
        }
        window = ByteBufferAllocator().buffer(capacity: windowSize)
        empty = ByteBufferAllocator().buffer(capacity: 16)
    }

    /// Inflates all of `input`, handing each piece of output to `output`.
    ///
    /// Returns early, with bytes left in `input`, when the stream's end is reached.
    /// - Throws: ``Refusal/corrupt`` for damaged data; whatever `output` throws.
    func feed(_ input: inout ByteBuffer, output: (UnsafeRawBufferPointer) throws -> Void) throws {
        while input.readableBytes > 0, !reachedEnd {
            let before = input.readableBytes
            let full = try step(&input)
            try flush(output)
            if !full && input.readableBytes > 0 {
                // zlib stopped without filling the window and with input left: the stream ended.
                reachedEnd = true
            } else if !full && input.readableBytes == before {
                break
            }
        }
    }

    /// Drains what zlib still holds once all input was fed, and tells whether the stream ended
    /// properly (`false`: the data was cut short).
    func finish(output: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        while !reachedEnd {
            let written = window.readableBytes
            do {
                try decompressor.inflate(from: &empty, to: &window)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                try flush(output)
                continue
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                try flush(output)
                return false
            } catch {
                throw Refusal.corrupt
            }
            let progressed = window.readableBytes > written
            try flush(output)
            if !progressed { reachedEnd = true }
        }
        return true
    }

    /// Starts a new stream (the next member of a multi-member gzip file).
    func reset() throws {
        do { try decompressor.reset() } catch { throw Refusal.corrupt }
        reachedEnd = false
    }

    enum Refusal: Error { case corrupt }

    /// One inflate call; returns whether it stopped because the window was full.
    private func step(_ input: inout ByteBuffer) throws -> Bool {
        do {
            try decompressor.inflate(from: &input, to: &window)
            return false
        } catch let error as CompressNIOError where error == .bufferOverflow {
            return true
        } catch let error as CompressNIOError where error == .inputBufferOverflow {
            return false
        } catch {
            throw Refusal.corrupt
        }
    }

    private func flush(_ output: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard window.readableBytes > 0 else { return }
        try window.withUnsafeReadableBytes { try output($0) }
        window.clear()
    }
}
