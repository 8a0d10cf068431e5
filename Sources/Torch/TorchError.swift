import CTorch

/// An error from libtorch or from the Swift wrapper around it.
public enum TorchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The model file does not exist or cannot be read.
    case fileNotFound(path: String)
    /// The file exists but is not a TorchScript module; `detail` says what it looks like instead.
    case notTorchScript(path: String, detail: String)
    /// The file is a TorchScript archive but damaged, for example truncated.
    case damagedFile(path: String, detail: String)
    /// libtorch refused the module for another reason.
    case loadFailed(path: String, message: String)
    /// A tensor or module operation failed inside libtorch.
    case operationFailed(operation: String, message: String)
    /// A caller passed something the wrapper cannot use (wrong element type, shape, device).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "model file not found or unreadable: \(path)"
        case .notTorchScript(let path, let detail):
            return "\(path) is not a TorchScript module: \(detail)"
        case .damagedFile(let path, let detail):
            return "\(path) is a damaged TorchScript file (\(detail)); export or copy it again"
        case .loadFailed(let path, let message):
            return "libtorch could not load \(path): \(message)"
        case .operationFailed(let operation, let message):
            return "\(operation) failed: \(message)"
        case .invalidArgument(let message):
            return message
        }
    }

    /// The first line of the message, for users; the whole message belongs in logs.
    public var summary: String {
        description.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? description
    }
}

/// Turns a failed status into `TorchError.operationFailed` with libtorch's message.
@inline(__always)
func check(_ status: ctorch_status, _ operation: @autoclosure () -> String) throws(TorchError) {
    if status != CTORCH_OK {
        throw TorchError.operationFailed(operation: operation(), message: lastError())
    }
}

/// The message of the last failed call on this thread.
func lastError() -> String {
    String(cString: ctorch_last_error())
}
