/// A loaded model that runs forward on tensors: a TorchScript module (``ScriptModule``) or an
/// AOTInductor package (``AOTInductorPackage``). Workers of one model share one, so `forward`
/// may be called from several threads at once.
public protocol InferenceModule: AnyObject, Sendable {
    /// Where the inputs of `forward` must be.
    var device: Device { get }
    /// The floating-point type the model's floating-point inputs must have.
    var floatType: DType { get }
    /// Bytes of weights held.
    var weightBytes: Int { get }
    /// Runs the model on `inputs`, in inference mode.
    func forward(_ inputs: [Tensor]) throws(TorchError) -> ModuleOutput
    /// Runs the model on the tensors as one list argument (torchvision's detection models).
    func forward(list tensors: [Tensor]) throws(TorchError) -> ModuleOutput
}

extension ScriptModule: InferenceModule {}
