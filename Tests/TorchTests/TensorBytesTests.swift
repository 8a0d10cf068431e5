import Foundation
import Testing
@testable import Torch

/// Tensors from and to raw bytes: how every element type, float16 and bool included, crosses a wire format.
@Suite struct TensorBytesTests {
    @Test func everyNamedTypeRoundTripsThroughBytes() throws {
        let types: [DType] = [.float32, .float64, .float16, .bfloat16, .int64, .int32, .int16, .int8, .uint8, .bool]
        for dtype in types {
            // Bytes that are valid elements of every type (bool needs 0 or 1).
            let bytes = (0..<(6 * dtype.byteCount)).map { UInt8($0 % 2) }
            let tensor = try Tensor.copying(bytes: bytes, shape: [2, 3], dtype: dtype)
            #expect(tensor.dtype == dtype && tensor.shape == [2, 3])
            #expect(try tensor.bytes() == bytes, "\(dtype)")
        }
        #expect(Set(types.map(\.code)).count == types.count)
    }

    @Test func valuesAreLittleEndianRowMajor() throws {
        let values: [Int32] = [1, -2, 3, 70000]
        let bytes = values.withUnsafeBytes { Array($0) }
        let tensor = try Tensor.copying(bytes: bytes, shape: [2, 2], dtype: .int32)
        #expect(try tensor.toArray(of: Int32.self) == values)
        // A float16 tensor reads back as the values converted to float32.
        let half = try Tensor.copying(bytes: [0x00, 0x38, 0x00, 0xC0], shape: [2], dtype: .float16)
        #expect(try half.converted(to: .float32).toArray(of: Float.self) == [0.5, -2])
        // A non-contiguous view is made contiguous first.
        let column = try Tensor.copying((0..<6).map { Float($0) }, shape: [2, 3]).select(dim: 1, index: 1)
        #expect(try column.bytes() == [Float(1), 4].withUnsafeBytes { Array($0) })
    }

    @Test func wrongByteCountsAndEmptyTensors() throws {
        #expect(throws: TorchError.invalidArgument("shape [1] of float32 needs 4 bytes, but 3 were given")) {
            try Tensor.copying(bytes: [0, 0, 0], shape: [1], dtype: .float32)
        }
        #expect(throws: TorchError.invalidArgument("cannot build a tensor of an unnamed element type")) {
            try Tensor.copying(bytes: [], shape: [1], dtype: .other)
        }
        let empty = try Tensor.copying(bytes: [], shape: [0, 4], dtype: .float32)
        #expect(empty.shape == [0, 4])
        #expect(try empty.bytes() == [])
    }
}
