import Foundation
import FuzzSupport
import ModelArchive
import NIOCore
#if FUZZING || DEBUG
@testable import ServerCore
@testable import ServerHTTP

/// Request bodies through the parsers the HTTP layer and the handlers run on them. An input is
/// `[selector][content type or header value]\n[body]`; the selector byte picks the parser:
/// multipart/form-data, KServe v2 JSON, KServe v2 with the binary tensor extension (the line is
/// `Inference-Header-Content-Length`), KServe v1 `instances`/`inputs` (for an image, a text and a
/// tensor model), MLflow's DataFrame JSON forms and CSV (then every row as the request of each
/// handler kind), a `{"url": …}` body, question-answering pairs, and the text classifier's forms.
/// Parsers may refuse an input, never crash on it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestBodies(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzDriver.bytes(data, size)
    guard let selector = input.first else { return 0 }
    let rest = input.dropFirst()
    let newline = rest.firstIndex(of: UInt8(ascii: "\n")) ?? rest.endIndex
    let line = String(decoding: rest[..<newline], as: UTF8.self)
    let body = Array(rest[newline...].dropFirst())
    let contentType: String? = line.isEmpty ? nil : line
    switch selector % 8 {
    case 0: multipart(body, contentType: contentType)
    case 1: attempt("KServe v2 JSON") { try KServeTensorCoding.decodeRequest(Array(rest), headerLength: nil) }
    case 2: kserveBinary(body, headerLength: line)
    case 3: kserveV1(Array(rest))
    case 4: mlflow(body, contentType: contentType)
    case 5: attempt("{\"url\": …}") { try ImageURLRequest.url(in: Array(rest)) }
    case 6: attempt("QA pairs") { try QuestionAnsweringInput.pairs(of: InferenceRequest(body: body, contentType: contentType)) }
    default: attempt("text classifier") { try TextClassificationHandler.texts(of: InferenceRequest(body: body, contentType: contentType)) }
    }
    return 0
}

func multipart(_ body: [UInt8], contentType: String?) {
    // As InferenceAPI.predict does: any boundary the content type names, an empty one included.
    guard let boundary = MultipartPayload.boundary(of: contentType) else { return }
    guard let payload = attempt("multipart", { try MultipartPayload.extract(from: ByteBuffer(bytes: body), boundary: boundary) })
    else { return }
    // A `url` part becomes the JSON body the core reads the address from.
    if payload.contentType == "application/json" { _ = try? ImageURLRequest.url(in: payload.bytes) }
}

func kserveBinary(_ body: [UInt8], headerLength: String) {
    attempt("KServe v2 binary") { try KServeTensorCoding.decodeRequest(body, headerLength: headerLength) }
    // BYTES elements in binary form, as the gRPC service's raw contents are read too.
    _ = try? KServeTensorCoding.unpackStrings(body[...], input: "fuzz")
}

/// Signatures of an image model, a text model and a tensor model with an int64 input.
let signatures: [ModelSignature] = [
    ModelSignature(version: "1", handlerInput: .image,
                   inputs: [.init(key: .index(0), dtype: .float32, shape: [-1, 3, -1, -1])], outputs: []),
    ModelSignature(version: "1", handlerInput: .text, inputs: [], outputs: []),
    ModelSignature(version: "1", handlerInput: .text,
                   inputs: [.init(key: .name("input_ids"), dtype: .int64, shape: [-1, -1])], outputs: []),
]

func kserveV1(_ body: [UInt8]) {
    let signature = signatures[body.count % signatures.count]
    guard let request = attempt("KServe v1", { try KServeV1Request.decode(body, signature: signature, limit: 64) }) else { return }
    for instance in request.instances {
        _ = try? KServeV1Inference.job(instance, signature: signature)
    }
}

func mlflow(_ body: [UInt8], contentType: String?) {
    guard let found = attempt("MLflow", { try MLflowRequest.rows(of: body, contentType: contentType, maxRows: 64) }),
        let rows = found
    else { return }
    for kind in [HandlerKind.textClassifier, .questionAnswering, .imageClassifier] {
        guard let requests = try? MLflowColumns(handler: kind, model: "fuzz").requests(rows) else { continue }
        for request in requests {
            let inference = InferenceRequest(body: request.body, contentType: request.contentType)
            switch kind {
            case .questionAnswering: _ = try? QuestionAnsweringInput.pairs(of: inference)
            case .textClassifier: _ = try? TextClassificationHandler.texts(of: inference)
            default: _ = try? ImageURLRequest.url(in: request.body)
            }
        }
    }
}
/// `parse()`'s result, or nil when it throws; the replayer says which (`FUZZ_VERBOSE=1`).
@discardableResult
func attempt<T>(_ what: String, _ parse: () throws -> T) -> T? {
    do {
        let result = try parse()
        FuzzDriver.note("\(what): \(result)")
        return result
    } catch {
        FuzzDriver.note("\(what) refused: \(error)")
        return nil
    }
}
#else
/// A plain release build has no testability: the parsers are internal to their modules.
public func fuzzRequestBodies(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { 0 }
#endif

#if !FUZZING
@main
enum FuzzRequestBodies {
    static func main() {
        #if !DEBUG
        print("FuzzRequestBodies replays inputs only in a debug build (it reaches internal parsers)")
        #endif
        FuzzDriver.replay(fuzzRequestBodies)
    }
}
#endif
