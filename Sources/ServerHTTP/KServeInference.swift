import Foundation
import ServerCore

/// KServe v2 inference on the core's operations: numeric inputs go straight to the model's
/// forward pass; one BYTES input `[N]` (encoded images or UTF-8 texts) runs the handler once per
/// element, concurrently so the elements batch, and the handler's tensors are joined in order:
/// `mask` UINT8 `[N, H, W]` (image_segmenter), or `probabilities` FP32 `[N, C]` and `label`
/// BYTES `[N]`. Outputs are named `output__0`, `output__1`… by position, or by their keys.
package struct KServeInference: Sendable {
    let server: ModelServer

    package init(server: ModelServer) {
        self.server = server
    }

    /// Runs `model` on `inputs`.
    /// - Parameters:
    ///   - outputs: output names to return, in this order; nil: all, in the model's order.
    ///   - timeout: the client's deadline, capped by the model's response timeout.
    ///   - connection: the client's connection; requests still queued when it closes are dropped.
    /// - Returns: the version that answered and the outputs.
    /// - Throws: `ModelServerError`; `.badRequest` for an output name the model does not give.
    package func infer(model: String, version: String?, inputs: [KServeTensor], outputs requested: [String]?,
               timeout: Duration?, connection: ClientConnection?) async throws -> (version: String, outputs: [KServeTensor]) {
        let served: String
        let outputs: [KServeTensor]
        if inputs.allSatisfy({ $0.datatype != .bytes }) {
            (served, outputs) = try await forward(model: model, version: version, inputs: inputs, timeout: timeout, connection: connection)
        } else {
            let signature = try server.signature(model: model, version: version)
            guard inputs.count == 1 else {
                throw ModelServerError.badRequest(
                    "a BYTES input runs the model's handler and must be the only input; got \(inputs.count) inputs (\(inputs.map { "\($0.name): \($0.datatype.rawValue)" }.joined(separator: ", ")))")
            }
            served = signature.version
            outputs = try await runHandler(on: inputs[0], model: model, signature: signature, timeout: timeout, connection: connection)
        }
        return (served, try KServeTensor.select(requested, from: outputs))
    }

    /// The numeric inputs straight to `forward`, in order; a refusal points at the model's metadata.
    private func forward(model: String, version: String?, inputs: [KServeTensor], timeout: Duration?,
                         connection: ClientConnection?) async throws -> (version: String, outputs: [KServeTensor]) {
        let result: TensorResult
        do {
            result = try await server.forward(model: model, version: version, inputs: inputs.map(\.data), timeout: timeout,
                                              connection: connection)
        } catch ModelServerError.invalidInput(let message) where !inputs.isEmpty {
            throw ModelServerError.invalidInput("\(message). Check their shapes and datatypes against GET /v2/models/\(model)")
        }
        var outputs: [KServeTensor] = []
        for output in result.outputs { outputs.append(try KServeTensor(output)) }
        return (result.version, outputs)
    }

    /// One handler request per element of a BYTES tensor, all to the version `signature`
    /// describes, run concurrently (so they batch), joined in order.
    private func runHandler(on input: KServeTensor, model: String, signature: ModelSignature, timeout: Duration?,
                            connection: ClientConnection?) async throws -> [KServeTensor] {
        let elements = input.data.strings
        guard !elements.isEmpty else { throw ModelServerError.invalidInput("BYTES input \(input.name) has no elements") }
        let isText = signature.handlerInput == .text
        let answers = try await inIndexOrder(elements.count) { [server] index in
            let body = isText ? elements[index] : Self.imageBytes(elements[index])
            let result = try await server.handlerOutputs(
                model: model, version: signature.version, input: body, contentType: isText ? "text/plain; charset=utf-8" : nil,
                timeout: timeout, connection: connection)
            var outputs: [KServeTensor] = []
            for output in result.outputs { outputs.append(try KServeTensor(output)) }
            return outputs
        }
        guard answers.allSatisfy({ $0.count == answers[0].count }) else {
            throw ModelServerError.modelFailure("the handler gave a different number of outputs for different elements of \(input.name)")
        }
        return try answers[0].indices.map { (position) throws(ModelServerError) -> KServeTensor in
            try KServeTensor.concatenated(answers.map { $0[position] }, name: answers[0][position].name)
        }
    }

    /// An image element as its bytes: raw PNG/JPEG and `{"url": …}` (the image to fetch) as
    /// they are, anything else read as base64.
    static func imageBytes(_ element: [UInt8]) -> [UInt8] {
        guard !ModelSignature.HandlerInput.isEncodedImage(element), !ImageURLRequest.isURLBody(element) else { return element }
        let text = String(decoding: element, as: UTF8.self)
        guard let decoded = Data(base64Encoded: text, options: .ignoreUnknownCharacters), !decoded.isEmpty else {
            return element
        }
        return [UInt8](decoded)
    }
}
