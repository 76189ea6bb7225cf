import CMPI

/// The same operations as `Communicator`, issued straight through the C API with no checks and no counters.
/// Exists only as the baseline `infer-bench collectives` measures the Swift layer against.
public enum RawMPI {
    public static func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>, _ c: Communicator) {
        MPI_Allreduce(tmpi_in_place(), buffer.baseAddress, Int32(buffer.count), tmpi_float(), tmpi_op_sum(), c.comm)
    }
    public static func allGather(_ input: UnsafeBufferPointer<Float>, _ output: UnsafeMutableBufferPointer<Float>, _ c: Communicator) {
        MPI_Allgather(input.baseAddress, Int32(input.count), tmpi_float(), output.baseAddress, Int32(input.count), tmpi_float(), c.comm)
    }
    public static func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int, _ c: Communicator) {
        MPI_Bcast(buffer.baseAddress, Int32(buffer.count), tmpi_float(), Int32(root), c.comm)
    }
    public static func sendRecv(_ output: UnsafeBufferPointer<Float>, to destination: Int,
                                _ input: UnsafeMutableBufferPointer<Float>, from source: Int, _ c: Communicator) {
        MPI_Sendrecv(output.baseAddress, Int32(output.count), tmpi_float(), Int32(destination), 0,
                     input.baseAddress, Int32(input.count), tmpi_float(), Int32(source), 0, c.comm, tmpi_status_ignore())
    }
}
