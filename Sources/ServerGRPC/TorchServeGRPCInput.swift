import Foundation
import GRPCCore
import ModelArchive
import ServerCore

/// The `input` map of TorchServe's `PredictionsRequest` as the core's request. TorchServe hands
/// the map to its handler as the request's fields, and handlers read the payload from `data`
/// (else `body`); here the payload becomes the body `POST /predictions` would carry, so both
/// answer the same bytes.
enum PredictionInput {
    /// The entries that carry the payload, in the order they are looked for.
    static let payloadKeys = ["data", "body", "file"]

    /// The payload entry as the body; `url` (an image address) as the `{"url": …}` body the core
    /// fetches; every other entry that is UTF-8 text as a parameter, like a query parameter of
    /// the HTTP route (`output=overlay`).
    static func request(from input: [String: Data]) throws(RPCError) -> InferenceRequest {
        let payloadKey = payloadKeys.first { input[$0] != nil }
        var parameters: [String: String] = [:]
        for (key, value) in input where key != payloadKey && key != "url" {
            if let text = String(data: value, encoding: .utf8) { parameters[key] = text }
        }
        if let payloadKey, let payload = input[payloadKey] {
            return InferenceRequest(body: Array(payload), parameters: parameters)
        }
        if let url = input["url"] {
            guard let text = String(data: url, encoding: .utf8) else {
                throw RPCError(code: .invalidArgument, message: "input entry 'url' is not UTF-8 text; send the image's address")
            }
            return InferenceRequest(
                body: ImageURLRequest.body(for: text.trimmingCharacters(in: .whitespacesAndNewlines)),
                contentType: "application/json", parameters: parameters)
        }
        let found = input.keys.sorted().prefix(8).map { Excerpt.of($0) }
        throw RPCError(
            code: .invalidArgument,
            message: "input has no entry named 'data', 'body', 'file' or 'url' (found: \(found)); send the payload as input[\"data\"]")
    }
}
