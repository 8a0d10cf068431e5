import Foundation
import Testing
@testable import Torch

@Suite struct TensorTests {
    @Test func roundTripKeepsShapeTypeAndValues() throws {
        let tensor = try Tensor.copying([Int32](1...6), shape: [2, 3])
        #expect(tensor.shape == [2, 3])
        #expect(tensor.dtype == .int32)
        #expect(tensor.device == .cpu)
        #expect(try tensor.toArray(of: Int32.self) == [1, 2, 3, 4, 5, 6])
    }

    @Test func shapeMismatchIsRejected() {
        #expect(throws: TorchError.invalidArgument("shape [2, 3] holds 6 elements, but 5 were given")) {
            try Tensor.copying([Float](repeating: 0, count: 5), shape: [2, 3])
        }
        #expect(throws: TorchError.invalidArgument("tensor shape [2, -1] has a negative dimension")) {
            try Tensor.empty(shape: [2, -1], dtype: .float32)
        }
    }

    @Test func wrongElementTypeIsRejected() throws {
        let tensor = try Tensor.copying([Float](repeating: 1, count: 4), shape: [4])
        #expect(throws: TorchError.invalidArgument("tensor holds float32 elements, not int64")) { try tensor.toArray(of: Int64.self) }
    }

    @Test func emptyTensorIsFilledInPlace() throws {
        let tensor = try Tensor.empty(shape: [2, 2], dtype: .float32)
        try tensor.withUnsafeMutableBufferPointer(as: Float.self) { buffer in
            for index in buffer.indices { buffer[index] = Float(index) * 0.5 }
        }
        #expect(try tensor.toArray(of: Float.self) == [0, 0.5, 1, 1.5])
    }

    final class Owner {
        let pointer: UnsafeMutablePointer<Float>
        let released: UnsafeMutablePointer<Bool>
        init(count: Int, released: UnsafeMutablePointer<Bool>) {
            pointer = .allocate(capacity: count)
            self.released = released
        }
        deinit {
            pointer.deallocate()
            released.pointee = true
        }
    }

    @Test func adoptedMemoryIsSharedAndReleasedWithTheTensor() throws {
        let released = UnsafeMutablePointer<Bool>.allocate(capacity: 1)
        defer { released.deallocate() }
        released.pointee = false
        do {
            var owner: Owner? = Owner(count: 3, released: released)
            let pointer = try #require(owner?.pointer)
            pointer.update(from: [1, 2, 3], count: 3)
            let tensor = try Tensor.adopting(UnsafeMutableRawPointer(pointer), shape: [3], dtype: .float32, owner: try #require(owner))
            owner = nil
            #expect(released.pointee == false)
            pointer[1] = 20  // no copy: the tensor sees the caller's memory
            #expect(try tensor.toArray(of: Float.self) == [1, 20, 3])
        }
        #expect(released.pointee == true)
    }

    @Test func argmaxSoftmaxTopK() throws {
        // Two rows of logits.
        let logits = try Tensor.copying([Float]([1, 3, 2, 0, -1, 5]), shape: [2, 3])
        #expect(try logits.argmax(dim: 1).toArray(of: Int64.self) == [1, 2])
        let probabilities = try logits.softmax(dim: 1).toArray(of: Float.self)
        let firstRow = [Float]([1, 3, 2]).map { exp($0) }
        let sum = firstRow.reduce(0, +)
        for (got, want) in zip(probabilities.prefix(3), firstRow.map { $0 / sum }) {
            #expect(abs(got - want) < 1e-6)
        }
        let (values, indices) = try logits.topK(2, dim: 1)
        #expect(try values.toArray(of: Float.self) == [3, 2, 5, 0])
        #expect(try indices.toArray(of: Int64.self) == [1, 2, 2, 0])
    }

    @Test func classMapIsArgmaxOverClassesAsUInt8() throws {
        // (N=2, C=5, 3×4) scores with repeated values, so ties are common.
        let values = (0..<120).map { Float(($0 * 37) % 11) - 5 }
        let scores = try Tensor.copying(values, shape: [2, 5, 3, 4])
        let expected = try scores.argmax(dim: 1).toArray(of: Int64.self).map { UInt8($0) }
        let map = try scores.classMap()
        #expect(map.shape == [2, 3, 4])
        #expect(map.dtype == .uint8)
        #expect(try map.toArray(of: UInt8.self) == expected)
        // Not contiguous (a slice of the classes), and bfloat16 (the fallback path): the same answer as argmax.
        let slice = try scores.narrow(dim: 1, start: 1, length: 3)
        #expect(try slice.classMap().toArray(of: UInt8.self) == slice.argmax(dim: 1).toArray(of: Int64.self).map { UInt8($0) })
        let bfloat = try scores.converted(to: .bfloat16)
        #expect(try bfloat.classMap().toArray(of: UInt8.self) == expected)
    }

    @Test func classMapKeepsTheFirstMaximumAndCountsNaNAsTheMaximum() throws {
        // Three positions, three classes: a tie between classes 0 and 2, a NaN in class 1, a NaN in classes 1 and 2.
        let scores = try Tensor.copying([Float]([
            4, 1, 0,
            2, .nan, .nan,
            4, 9, .nan,
        ]), shape: [1, 3, 3])
        #expect(try scores.classMap().toArray(of: UInt8.self) == [0, 1, 1])
        #expect(try scores.argmax(dim: 1).toArray(of: Int64.self) == [0, 1, 1])
    }

    @Test func classMapRejectsMoreThan256ClassesAndMissingClassDimension() throws {
        #expect { try Tensor.empty(shape: [1, 257, 2], dtype: .float32).classMap() } throws: { error in
            guard case .operationFailed(let operation, let message)? = error as? TorchError else { return false }
            return operation == "class map of shape [1, 257, 2]" && message.contains("class map holds 1 to 256 classes, got 257")
        }
        #expect { try Tensor.copying([Float]([1, 2]), shape: [2]).classMap() } throws: { error in
            guard case .operationFailed(let operation, let message)? = error as? TorchError else { return false }
            return operation == "class map of shape [2]" && message.contains("class map needs (N, C, ...) scores, got 1 dimensions")
        }
    }

    @Test func stackSelectNarrowConcatenate() throws {
        let a = try Tensor.copying([Float]([1, 2]), shape: [2])
        let b = try Tensor.copying([Float]([3, 4]), shape: [2])
        let stacked = try Tensor.stack([a, b])
        #expect(stacked.shape == [2, 2])
        #expect(try stacked.select(dim: 0, index: 1).toArray(of: Float.self) == [3, 4])
        #expect(try stacked.narrow(dim: 1, start: 1, length: 1).toArray(of: Float.self) == [2, 4])
        #expect(try Tensor.concatenate([a, b]).toArray(of: Float.self) == [1, 2, 3, 4])
        #expect { try Tensor.stack([a, try Tensor.copying([Float]([1]), shape: [1])]) } throws: { error in
            guard case .operationFailed(let operation, let message)? = error as? TorchError else { return false }
            return operation == "stacking 2 tensors" && message.contains("stack expects each tensor to be equal size")
        }
    }

    @Test func conversionAndDeviceMoves() throws {
        let tensor = try Tensor.copying([Float]([1.7, -2.2]), shape: [2])
        #expect(try tensor.converted(to: .int64).toArray(of: Int64.self) == [1, -2])
        #expect(try tensor.to(.cpu).toArray(of: Float.self) == [1.7, -2.2])
        if TorchRuntime.cudaDeviceCount == 0 {
            let error = try #require(throws: TorchError.self) { try tensor.to(.cuda(0)) }
            #expect(!error.summary.isEmpty)
        } else {
            let onGPU = try tensor.to(.cuda(0))
            #expect(onGPU.device == .cuda(0))
            #expect(try onGPU.toArray(of: Float.self) == [1.7, -2.2])
        }
    }

    @Test func intraOpThreads() throws {
        let before = TorchRuntime.intraOpThreads
        try TorchRuntime.setIntraOpThreads(1)
        #expect(TorchRuntime.intraOpThreads == 1)
        try TorchRuntime.setIntraOpThreads(before)
        #expect(throws: TorchError.invalidArgument("intra-op threads must be at least 1, got 0")) { try TorchRuntime.setIntraOpThreads(0) }
        #expect(TorchRuntime.version.hasPrefix("1.") || TorchRuntime.version.hasPrefix("2."))
    }

    /// glibc takes the cap (the soak check shows what it does to RSS); 0 is refused.
    @Test func mallocArenaCap() throws {
        try TorchRuntime.limitMallocArenas(16)
        #expect(throws: TorchError.invalidArgument("malloc arenas must be at least 1, got 0")) { try TorchRuntime.limitMallocArenas(0) }
    }
}

/// Each worker thread runs with its own intra-op thread count, whatever threads started later set.
@Test func intraOpThreadsStayPerThreadWhenAnotherThreadSetsItsOwnLater() throws {
    let firstSet = DispatchSemaphore(value: 0), secondSet = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
    let seen = SeenThreads()
    let first = Thread {
        seen.record(Result { try TorchRuntime.setIntraOpThreads(2) })
        firstSet.signal()
        secondSet.wait()
        // libtorch sets a thread's count on its first parallel call from the last count set by
        // any thread; this thread set its own before, and keeps it.
        seen.first = TorchRuntime.intraOpThreads
        done.signal()
    }
    let second = Thread {
        firstSet.wait()
        seen.record(Result { try TorchRuntime.setIntraOpThreads(1) })
        seen.second = TorchRuntime.intraOpThreads
        secondSet.signal()
    }
    first.start()
    second.start()
    done.wait()
    #expect(seen.errors.isEmpty, "\(seen.errors)")
    #expect(seen.first == 2)
    #expect(seen.second == 1)
}

/// What the threads of the test above saw.
private final class SeenThreads: @unchecked Sendable {
    private let lock = NSLock()
    private var _first: Int?, _second: Int?, _errors: [String] = []
    var first: Int? { get { lock.withLock { _first } } set { lock.withLock { _first = newValue } } }
    var second: Int? { get { lock.withLock { _second } } set { lock.withLock { _second = newValue } } }
    var errors: [String] { lock.withLock { _errors } }
    func record(_ result: Result<Void, any Error>) {
        if case .failure(let error) = result { lock.withLock { _errors.append("\(error)") } }
    }
}

@Suite struct DevicePlacementTests {
    @Test func cpuWithoutGPUs() throws {
        let placement = DevicePlacement(visibleGPUs: 0)
        #expect(try placement.device(forWorker: 0) == .cpu)
        #expect(try placement.device(forWorker: 3) == .cpu)
    }

    @Test func roundRobinOverGPUs() throws {
        let placement = DevicePlacement(visibleGPUs: 3)
        #expect(try (0..<7).map { try placement.device(forWorker: $0) } == [.cuda(0), .cuda(1), .cuda(2), .cuda(0), .cuda(1), .cuda(2), .cuda(0)])
    }

    @Test func numberOfGPULimitsTheDevices() throws {
        let placement = DevicePlacement(visibleGPUs: 4, limit: 2)
        #expect(placement.gpuCount == 2)
        #expect(try (0..<3).map { try placement.device(forWorker: $0) } == [.cuda(0), .cuda(1), .cuda(0)])
        #expect(DevicePlacement(visibleGPUs: 1, limit: 8).gpuCount == 1)
        #expect(try DevicePlacement(visibleGPUs: 2, limit: 0).device(forWorker: 1) == .cpu)
    }

    @Test func deviceIdsAndForcedCPU() throws {
        let placement = DevicePlacement(visibleGPUs: 4)
        #expect(try (0..<3).map { try placement.device(forWorker: $0, deviceIds: [2, 3]) } == [.cuda(2), .cuda(3), .cuda(2)])
        #expect(try placement.device(forWorker: 1, forceCPU: true) == .cpu)
        #expect(throws: TorchError.invalidArgument("deviceIds contains 4, but only 4 GPU(s) are usable (ids 0..<4)")) {
            try placement.device(forWorker: 0, deviceIds: [4])
        }
        #expect(Device.cuda(1).description == "cuda:1")
    }
}
