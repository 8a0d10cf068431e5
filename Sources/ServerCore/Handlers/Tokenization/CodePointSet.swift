/// A set of Unicode code points stored as sorted, disjoint ranges; membership is a binary search.
struct CodePointSet: Sendable {
    private let ranges: [ClosedRange<UInt32>]

    /// - Parameter ranges: sorted by lower bound and disjoint.
    init(_ ranges: [ClosedRange<UInt32>]) {
        self.ranges = ranges
    }

    func contains(_ value: UInt32) -> Bool {
        var low = 0
        var high = ranges.count - 1
        while low <= high {
            let middle = (low + high) / 2
            let range = ranges[middle]
            if value < range.lowerBound {
                high = middle - 1
            } else if value > range.upperBound {
                low = middle + 1
            } else {
                return true
            }
        }
        return false
    }

    func contains(_ scalar: Unicode.Scalar) -> Bool {
        contains(scalar.value)
    }
}
