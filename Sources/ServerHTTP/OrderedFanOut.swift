/// Runs `work` for every index in `0..<count` at once, so that the requests they make batch in
/// the model's queue, and returns the results in index order; the first error thrown ends it.
/// Used wherever one HTTP request carries several inputs (KServe v2 BYTES elements, KServe v1
/// instances, MLflow rows).
func inIndexOrder<T: Sendable>(_ count: Int, _ work: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
    try await withThrowingTaskGroup(of: (Int, T).self) { group in
        for index in 0..<count {
            group.addTask { (index, try await work(index)) }
        }
        var results = [T?](repeating: nil, count: count)
        for try await (index, result) in group { results[index] = result }
        return results.compactMap { $0 }
    }
}
