/// Normalized text: its scalars, and for each the index of the input scalar it comes from.
struct NormalizedScalars {
    private(set) var scalars: [Unicode.Scalar] = []
    private(set) var origins: [Int] = []

    var count: Int { scalars.count }

    mutating func reserveCapacity(_ capacity: Int) {
        scalars.reserveCapacity(capacity)
        origins.reserveCapacity(capacity)
    }

    mutating func append(_ scalar: Unicode.Scalar, from origin: Int) {
        scalars.append(scalar)
        origins.append(origin)
    }

    /// Removes the scalars `shouldRemove` picks, with their origins.
    mutating func removeAll(where shouldRemove: (Unicode.Scalar) -> Bool) {
        var kept = 0
        for index in scalars.indices where !shouldRemove(scalars[index]) {
            scalars[kept] = scalars[index]
            origins[kept] = origins[index]
            kept += 1
        }
        scalars.removeLast(scalars.count - kept)
        origins.removeLast(origins.count - kept)
    }

    /// Unicode's canonical ordering: each run of scalars with a non-zero combining class sorted by
    /// it, stably.
    mutating func orderCombiningMarks() {
        var start = 0
        while start < scalars.count {
            guard scalars[start].properties.canonicalCombiningClass.rawValue != 0 else {
                start += 1
                continue
            }
            var end = start + 1
            while end < scalars.count, scalars[end].properties.canonicalCombiningClass.rawValue != 0 { end += 1 }
            if end - start > 1 {
                let run = zip(scalars[start..<end], origins[start..<end]).enumerated().sorted {
                    let (left, right) = ($0.element.0.properties.canonicalCombiningClass.rawValue,
                                         $1.element.0.properties.canonicalCombiningClass.rawValue)
                    return left < right || (left == right && $0.offset < $1.offset)
                }
                for (offset, item) in run.enumerated() {
                    scalars[start + offset] = item.element.0
                    origins[start + offset] = item.element.1
                }
            }
            start = end
        }
    }
}
