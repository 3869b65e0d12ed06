import Foundation

/// What a buffer holds, as the planner's memory model names it (README, "The model" and "The training engine").
public enum MemoryCategory: String, CaseIterable, Sendable, Codable {
    case frozenWeights = "frozen_weights"
    case trainableWeights = "trainable_weights"
    case gradients
    case optimizerStates = "optimizer_states"
    case activations
    case activationGradients = "activation_gradients"
    case logits
    case transient
}

/// The part of a training step the engine is in; each keeps its own peak.
public enum EnginePhase: String, CaseIterable, Sendable, Codable {
    case setup, forward, backward, optimizer
}

/// Counts every byte the engine allocates, by category: live bytes now, the peak of each
/// category, the peak of the total, and the total's peak within each phase with the
/// categories that made it up.
///
/// Every engine buffer is a ``Buffer`` made by ``allocate(_:count:category:)`` and given
/// back when it is freed, so the ledger is exact by construction; a test cross-checks it
/// against the C allocator's own accounting (mallinfo2).
public final class Ledger: @unchecked Sendable {
    public private(set) var live: [MemoryCategory: Int] = [:]
    public private(set) var peak: [MemoryCategory: Int] = [:]
    public private(set) var liveTotal = 0
    public private(set) var peakTotal = 0
    public private(set) var phase: EnginePhase = .setup
    /// The largest total seen in each phase, and the live bytes by category at that moment.
    public private(set) var phasePeak: [EnginePhase: Int] = [:]
    public private(set) var phasePeakBreakdown: [EnginePhase: [MemoryCategory: Int]] = [:]

    public init() {}

    /// Enters `phase`; its peak starts from what is live now.
    public func enter(_ phase: EnginePhase) {
        self.phase = phase
        note()
    }

    /// Forgets every peak (not the live bytes): the next step is measured on its own.
    public func resetPeaks() {
        peak = live
        peakTotal = liveTotal
        phasePeak = [:]
        phasePeakBreakdown = [:]
        note()
    }

    /// A counted buffer of `count` elements, zero-filled unless `zeroed` is false (for
    /// buffers the caller overwrites whole before reading).
    public func allocate<T>(_ type: T.Type, count: Int, category: MemoryCategory, zeroed: Bool = true) -> Buffer<T> {
        Buffer(count: count, category: category, ledger: self, zeroed: zeroed)
    }

    func add(_ bytes: Int, _ category: MemoryCategory) {
        live[category, default: 0] += bytes
        liveTotal += bytes
        peak[category] = max(peak[category, default: 0], live[category]!)
        peakTotal = max(peakTotal, liveTotal)
        note()
    }

    func remove(_ bytes: Int, _ category: MemoryCategory) {
        live[category, default: 0] -= bytes
        liveTotal -= bytes
    }

    private func note() {
        if liveTotal > phasePeak[phase, default: -1] {
            phasePeak[phase] = liveTotal
            phasePeakBreakdown[phase] = live
        }
    }
}

/// An array of `count` elements whose bytes are counted in a ``Ledger`` under one
/// category for as long as the buffer lives; zero-filled when made.
public final class Buffer<Element>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Element>
    public let count: Int
    public let category: MemoryCategory
    public var bytes: Int { count * MemoryLayout<Element>.stride }
    private let ledger: Ledger

    init(count: Int, category: MemoryCategory, ledger: Ledger, zeroed: Bool = true) {
        precondition(count >= 0, "a buffer cannot have a negative size")
        self.count = count
        self.category = category
        self.ledger = ledger
        pointer = UnsafeMutablePointer<Element>.allocate(capacity: max(count, 1))
        if zeroed {
            let raw = UnsafeMutableRawPointer(pointer)
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1) * MemoryLayout<Element>.stride)
        }
        ledger.add(count * MemoryLayout<Element>.stride, category)
    }

    private var released = false

    /// Gives the bytes back now. The engine frees its step buffers at fixed points of its
    /// schedule (``Trainer``), not whenever the optimizer lets ARC run `deinit`, so the
    /// ledger's peaks are the same in debug and release builds. The pointer is invalid after.
    public func release() {
        guard !released else { return }
        released = true
        ledger.remove(bytes, category)
        pointer.deallocate()
    }

    deinit { release() }

    public subscript(i: Int) -> Element {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public var buffer: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

#if canImport(CMalloc)
import CMalloc
#endif

/// The process's own view of its memory, to check the ledger against.
public enum ProcessMemory {
    /// The process's peak resident set (getrusage's ru_maxrss, KiB on Linux), in bytes.
    public static var peakResidentBytes: Int {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss) * 1024
        #else
        getrusage(RUSAGE_SELF, &usage)
        return Int(usage.ru_maxrss)   // bytes on Darwin
        #endif
    }

    /// Asks glibc to keep freed blocks for reuse instead of returning each large one to
    /// the kernel (mmap threshold and trim threshold raised): a training step frees and
    /// re-allocates the same sizes every time, and the page faults would otherwise cost
    /// more than the arithmetic. Bytes in use are unchanged; only what malloc caches.
    public static func keepFreedMemory() {
        #if canImport(CMalloc) && os(Linux)
        _ = mallopt(M_MMAP_THRESHOLD, 1 << 30)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        #endif
    }

    /// Bytes malloc has handed out and not had back (glibc `mallinfo2`: `uordblks`, the
    /// heap's allocated bytes, plus `hblkhd`, the bytes of mmap'ed blocks); nil elsewhere.
    public static var mallocInUse: Int? {
        #if canImport(CMalloc) && os(Linux)
        let m = mallinfo2()
        return Int(m.uordblks) + Int(m.hblkhd)
        #else
        return nil
        #endif
    }
}

/// The ledger against the process's own accounting, in a quiet process: allocates
/// `buffers` counted buffers of about `elements` floats each, and reports the ledger's live
/// bytes, how much malloc's bytes in use grew, and how far they are from the start once
/// the buffers are freed. nil where mallinfo2 is unavailable.
public enum LedgerCheck {
    public static func run(buffers: Int = 16, elements: Int = 1 << 22) -> (ledger: Int, mallocGrown: Int, mallocAfterFree: Int)? {
        guard let before = ProcessMemory.mallocInUse else { return nil }
        let ledger = Ledger()
        var held: [Buffer<Float>] = []
        for i in 0..<buffers { held.append(ledger.allocate(Float.self, count: elements + i * 1000, category: .activations)) }
        let grown = (ProcessMemory.mallocInUse ?? 0) - before
        let live = ledger.liveTotal
        held.removeAll()
        let after = (ProcessMemory.mallocInUse ?? 0) - before
        return (live, grown, after)
    }
}
