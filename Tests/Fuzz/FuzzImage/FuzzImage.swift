import FuzzSupport
import ImageCodec

/// PNG and JPEG decoding through ImageDecoder (and so CImage's libpng and libjpeg code) with a
/// pixel limit and a deadline, as the image handlers decode request bodies; every image that
/// decodes is then encoded to PNG and decoded again, and must come back identical.
#if !FUZZING
@main
enum FuzzImage {
    static func main() { FuzzDriver.replay(fuzzImage) }
}
#endif

/// 1 Mpixel: small enough that one input stays far under the 1 s hang bound under the sanitizers,
/// large enough for every decoder path (Adam7, progressive scans, palettes) at real sizes.
let decoder = ImageDecoder(pixelLimit: 1 << 20)

/// The round trip re-encodes images up to this many pixels (the encoder is not what is fuzzed).
let roundTripPixels = 1 << 16

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzDriver.bytes(data, size)
    // The handlers pass the request's deadline; half a second leaves room under the hang bound.
    let deadline = ContinuousClock.now.advanced(by: .milliseconds(500))
    let image: Image
    do {
        image = try decoder.decode(bytes, deadline: deadline)
    } catch {
        return 0
    }
    guard image.width > 0, image.height > 0, image.width * image.height <= decoder.pixelLimit,
        image.pixels.count == image.width * image.height * image.channels
    else {
        FuzzDriver.violated("decoded \(image.width)x\(image.height)x\(image.channels) with \(image.pixels.count) bytes")
    }
    guard image.width * image.height <= roundTripPixels else { return 0 }
    do {
        let png = try image.encodedPNG(compressionLevel: Int(bytes.count % 10))
        let again = try ImageDecoder().decode(png)
        guard again == image else { FuzzDriver.violated("PNG round trip changed a \(image.width)x\(image.height) image") }
    } catch {
        FuzzDriver.violated("PNG round trip of a \(image.width)x\(image.height) image failed: \(error)")
    }
    return 0
}
