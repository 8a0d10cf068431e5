import Foundation
import ServerCore

/// KServe v1 predictions on the core's operations. Each instance is a request of its own, all
/// submitted at once so that they batch in the model's queue, and answered in order: a string,
/// `{"data"|"b64": …}` or, for an image model, `{"url": …}` (the image to fetch) runs the handler
/// (its JSON answer is the prediction, any other answer becomes `{"b64": …}`); nested lists of
/// numbers, `forward`'s first input, run the forward pass (its output is the prediction; several
/// outputs, an object by their names).
struct KServeV1Inference: Sendable {
    let server: ModelServer

    /// What one instance runs as, checked before anything is queued.
    enum Job: Sendable {
        /// A `/predictions` body for the handler.
        case handler(body: [UInt8], contentType: String?)
        /// `forward`'s first input; `batched` when a batch dimension of 1 was added to the instance.
        case forward(TensorData, batched: Bool)
    }

    /// Runs every instance on the version `signature` describes.
    /// - Parameters:
    ///   - parameters: the query parameters, passed to the handler as `/predictions` does (`output=png`).
    ///   - timeout: the client's deadline for each instance, capped by the model's response timeout.
    /// - Returns: the version that answered the first instance, and the predictions as JSON texts, in order.
    /// - Throws: `APIError` whose message starts with the failing instance (`instances[2]: …`).
    func predict(_ instances: [KServeV1Instance], model: String, signature: ModelSignature, parameters: [String: String],
                 timeout: Duration?, connection: ClientConnection?) async throws -> (version: String, predictions: [String]) {
        var jobs: [Job] = []
        for (index, instance) in instances.enumerated() {
            do {
                jobs.append(try Self.job(instance, signature: signature))
            } catch {
                throw Self.failure(error, instance: index)
            }
        }
        let answers = try await inIndexOrder(jobs.count) { [server, jobs] index in
            do {
                switch jobs[index] {
                case .handler(let body, let contentType):
                    var request = InferenceRequest(body: body, contentType: contentType, parameters: parameters, timeout: timeout)
                    request.connection = connection
                    let answer = try await server.predict(model: model, version: signature.version, request: request)
                    return (version: answer.version, prediction: Self.prediction(answer))
                case .forward(let input, let batched):
                    let result = try await server.forward(model: model, version: signature.version, inputs: [input],
                                                          timeout: timeout, connection: connection)
                    var outputs: [KServeTensor] = []
                    for output in result.outputs { outputs.append(try KServeTensor(output)) }
                    return (version: result.version, prediction: Self.prediction(outputs, batched: batched))
                }
            } catch let error as ModelServerError {
                throw Self.failure(error, instance: index)
            }
        }
        return (answers.first?.version ?? signature.version, answers.map(\.prediction))
    }

    /// A core error as the client sees it, naming the instance.
    static func failure(_ error: ModelServerError, instance index: Int) -> APIError {
        var failure = APIError(error)
        failure.message = "instances[\(index)]: \(failure.message)"
        return failure
    }

    /// What an instance runs as. An image model takes base64 image bytes in every string form;
    /// a text model takes a string or `data` as the text itself (TorchServe's form) and `b64` decoded.
    /// Lists of numbers get a batch dimension of 1 when they have one dimension fewer than
    /// `forward`'s first input declares (TensorFlow Serving's instances are rows of a batch).
    static func job(_ instance: KServeV1Instance, signature: ModelSignature) throws(ModelServerError) -> Job {
        let text = "text/plain; charset=utf-8"
        let input = signature.handlerInput
        switch (instance, input) {
        case (.tensor(let tensor), _):
            guard let declared = signature.inputs.first?.shape.count, tensor.shape.count + 1 == declared else {
                return .forward(tensor.data, batched: false)
            }
            return .forward(try TensorData(shape: [1] + tensor.shape, elements: tensor.data.elements), batched: true)
        case (.string(let value), .image):
            return .handler(body: try decodeBase64(value, field: "a string", input: input), contentType: nil)
        case (.data(let value), .image):
            return .handler(body: try decodeBase64(value, field: "data", input: input), contentType: nil)
        case (.base64(let value), _):
            return .handler(body: try decodeBase64(value, field: "b64", input: input), contentType: input == .text ? text : nil)
        case (.url(let url), .image):
            return .handler(body: ImageURLRequest.body(for: url), contentType: "application/json")
        case (.url, .text):
            throw .badRequest("url names an image to fetch, and this model takes text; send the text as a string or {\"data\": …}")
        case (.string(let value), .text), (.data(let value), .text):
            return .handler(body: Array(value.utf8), contentType: text)
        }
    }

    private static func decodeBase64(_ value: String, field: String, input: ModelSignature.HandlerInput) throws(ModelServerError) -> [UInt8] {
        guard let bytes = Data(base64Encoded: value, options: .ignoreUnknownCharacters), !bytes.isEmpty else {
            let expected = input == .image ? "the base64 of a PNG or JPEG image" : "base64"
            throw .invalidInput("\(field) is not \(expected) (\(value.utf8.count) characters)")
        }
        return [UInt8](bytes)
    }

    /// The handler's answer as a prediction: its JSON as it is, anything else (a PNG) as `{"b64": …}`.
    static func prediction(_ answer: InferenceResponse) -> String {
        if answer.contentType.lowercased().contains("json") { return String(decoding: answer.body, as: UTF8.self) }
        return "{\"b64\":\"\(Data(answer.body).base64EncodedString())\"}"
    }

    /// `forward`'s outputs as a prediction: each as nested lists, without its first dimension when
    /// the input was `batched` and that dimension is 1; one output as it is, several as an object
    /// by their names (`output__0`, … or the dict's keys).
    static func prediction(_ outputs: [KServeTensor], batched: Bool) -> String {
        func nested(_ tensor: KServeTensor) -> String {
            let items: [String]
            if tensor.datatype == .bytes {
                items = tensor.data.strings.map { jsonString(String(decoding: $0, as: UTF8.self)) }
            } else {
                // Numbers, `true`/`false` and `null` hold no comma.
                var flat = ""
                KServeTensorCoding.appendJSONData(tensor, to: &flat)
                items = flat.split(separator: ",").map(String.init)
            }
            let shape = batched && tensor.shape.first == 1 ? Array(tensor.shape.dropFirst()) : tensor.shape
            var json = ""
            var next = 0
            func append(_ dimensions: ArraySlice<Int>) {
                guard let count = dimensions.first else {
                    json += next < items.count ? items[next] : "null"
                    next += 1
                    return
                }
                json += "["
                for position in 0..<count {
                    if position > 0 { json += "," }
                    append(dimensions.dropFirst())
                }
                json += "]"
            }
            append(shape[...])
            return json
        }
        if outputs.count == 1 { return nested(outputs[0]) }
        return "{" + outputs.map { "\(jsonString($0.name)):\(nested($0))" }.joined(separator: ",") + "}"
    }
}

/// One instance of a KServe v1 request, as it was sent.
enum KServeV1Instance: Sendable, Decodable {
    /// A JSON string: the text for a text model, a base64 image for an image model.
    case string(String)
    /// `{"data": "…"}`, TorchServe's form: a base64 image for an image model, the text for a text model.
    case data(String)
    /// `{"b64": "…"}`, TensorFlow Serving's form for binary data: always base64.
    case base64(String)
    /// `{"url": "…"}`: an image the server fetches (image models only).
    case url(String)
    /// Nested lists of numbers, read as the element type `forward`'s first input declares.
    case tensor(KServeTensor)

    /// Where the decoder finds the element type of `forward`'s first input.
    static let datatypeKey = CodingUserInfoKey(rawValue: "KServeV1Instance.datatype")

    private struct Field: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let location = KServeTensorCoding.path(decoder.codingPath)
        if let text = try? decoder.singleValueContainer().decode(String.self) {
            self = .string(text)
        } else if let object = try? decoder.container(keyedBy: Field.self) {
            let fields = ["data", "b64", "url"].map(Field.init(stringValue:)).filter(object.contains)
            guard fields.count == 1, let field = fields.first else {
                guard fields.isEmpty else {
                    throw ModelServerError.badRequest("\(location) has both \(fields.map(\.stringValue).joined(separator: " and ")); send one")
                }
                throw ModelServerError.badRequest(
                    "\(location) is an object without data, b64 or url; send {\"data\": \"<base64 image or text>\"}, {\"b64\": \"<base64>\"}, {\"url\": \"<image URL>\"}, a string or nested lists of numbers")
            }
            let value = try object.decode(String.self, forKey: field)
            switch field.stringValue {
            case "data": self = .data(value)
            case "b64": self = .base64(value)
            default: self = .url(value)
            }
        } else if var rows = try? decoder.unkeyedContainer() {
            let shape = try Self.shape(of: &rows)
            guard !shape.contains(0) else {
                throw ModelServerError.invalidInput("\(location) is an empty list (shape \(shape)); send nested lists of numbers")
            }
            let datatype = Self.datatypeKey.flatMap { decoder.userInfo[$0] as? KServeDatatype } ?? .fp32
            var elements = try decoder.unkeyedContainer()
            var reader = ElementReader(datatype: datatype)
            try reader.read(&elements)
            self = .tensor(try KServeTensor(name: location, datatype: datatype, shape: shape, contents: reader.contents))
        } else {
            throw ModelServerError.badRequest(
                "\(location) is neither a string, an object with data or b64, nor a list of numbers")
        }
    }

    /// The dimensions of nested lists, which must be rectangular: `[[1, 2], [3, 4]]` is `[2, 2]`.
    private static func shape(of rows: inout any UnkeyedDecodingContainer) throws -> [Int] {
        var count = 0
        var inner: [Int]?
        while !rows.isAtEnd {
            let row: [Int]
            // A failed decode leaves the entry in place, so a list is read as one after it is not a scalar.
            let position = KServeTensorCoding.path(rows.codingPath) + "[\(rows.currentIndex)]"
            if (try? rows.decode(Scalar.self)) != nil {
                row = []
            } else if var nested = try? rows.nestedUnkeyedContainer() {
                row = try shape(of: &nested)
            } else {
                throw ModelServerError.badRequest("\(position) is neither a number nor a list of numbers")
            }
            if let inner, inner != row {
                throw ModelServerError.invalidInput(
                    "\(KServeTensorCoding.path(rows.codingPath)) holds entries of shapes \(inner) and \(row); nested lists must be rectangular")
            }
            inner = row
            count += 1
        }
        return [count] + (inner ?? [])
    }

    /// An element of a list, skipped while its shape is measured; its value is read afterwards.
    private struct Scalar: Decodable {
        init(from decoder: any Decoder) throws {
            let value = try decoder.singleValueContainer()
            guard (try? value.decode(Double.self)) != nil || (try? value.decode(Bool.self)) != nil else {
                throw DecodingError.typeMismatch(Double.self, .init(codingPath: decoder.codingPath, debugDescription: "not a number"))
            }
        }
    }
}

/// The body of `:predict`: `{"instances": [...]}`, or KServe's alias `{"inputs": [...]}`.
struct KServeV1Request: Decodable {
    var instances: [KServeV1Instance]

    private enum CodingKeys: String, CodingKey {
        case instances, inputs
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch (container.contains(.instances), container.contains(.inputs)) {
        case (true, true):
            throw ModelServerError.badRequest("the request has both instances and inputs; send one")
        case (false, false):
            throw ModelServerError.badRequest("the request has no instances; send {\"instances\": [...]}, one entry per prediction")
        case (let isInstances, _):
            instances = try container.decode([KServeV1Instance].self, forKey: isInstances ? .instances : .inputs)
        }
    }

    /// Decodes a body, reading lists of numbers as the element type of `forward`'s first input.
    /// - Parameter limit: the most instances one request may hold (the model's queue capacity).
    /// - Throws: `ModelServerError.badRequest` or `.invalidInput` naming the field and instance.
    static func decode(_ body: [UInt8], signature: ModelSignature, limit: Int) throws -> KServeV1Request {
        guard body.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "{") else {
            throw ModelServerError.badRequest(
                body.isEmpty ? "the body is empty; send {\"instances\": [...]}" : "the body is not a JSON object; send {\"instances\": [...]}")
        }
        let decoder = JSONDecoder()
        if let key = KServeV1Instance.datatypeKey,
           let input = signature.inputs.first.flatMap({ KServeDatatype($0.dtype) }), KServeDatatype.accepted.contains(input) {
            decoder.userInfo[key] = input
        }
        let request: KServeV1Request
        do {
            request = try decoder.decode(KServeV1Request.self, from: Data(body))
        } catch let error as DecodingError {
            throw ModelServerError.badRequest("invalid KServe v1 request: \(KServeTensorCoding.describe(error))")
        }
        guard !request.instances.isEmpty else { throw ModelServerError.badRequest("instances is empty; send one entry per prediction") }
        guard request.instances.count <= limit else {
            throw ModelServerError.badRequest(
                "\(request.instances.count) instances are more than the model's queue holds (job_queue_size \(limit)); send at most \(limit) per request")
        }
        return request
    }
}
