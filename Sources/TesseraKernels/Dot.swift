// Vector primitives on contiguous floats: 16 lanes at a time, a scalar tail.

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always) func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// Σ a[i]·b[i] over `count` floats.
@inline(__always) public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    while i &+ 16 <= count {
        acc += load16(a + i) * load16(b + i)
        i &+= 16
    }
    var sum = acc.sum()
    while i < count {
        sum += a[i] * b[i]
        i &+= 1
    }
    return sum
}

/// y[i] += alpha·x[i] over `count` floats.
@inline(__always) public func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    let a = SIMD16<Float>(repeating: alpha)
    var i = 0
    while i &+ 16 <= count {
        store16(load16(y + i) + a * load16(x + i), y + i)
        i &+= 16
    }
    while i < count {
        y[i] += alpha * x[i]
        i &+= 1
    }
}

/// y[i] += x[i] over `count` floats (residual connections).
@inline(__always) public func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i &+ 16 <= count {
        store16(load16(y + i) + load16(x + i), y + i)
        i &+= 16
    }
    while i < count {
        y[i] += x[i]
        i &+= 1
    }
}
