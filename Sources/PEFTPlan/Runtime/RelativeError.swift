import Foundation

/// The relative error every comparison in peft-plan reports (calibration tables, fits,
/// reports): (predicted − measured) / measured. 0 when both are 0 (an exact match); nil
/// when only the measurement is 0, or either is not finite (there is no scale to compare on).
public func relativeError(predicted: Double, measured: Double) -> Double? {
    guard predicted.isFinite, measured.isFinite else { return nil }
    if measured == 0 { return predicted == 0 ? 0 : nil }
    return (predicted - measured) / measured
}

/// ``relativeError(predicted:measured:)`` of two byte counts.
public func relativeError(predicted: Int, measured: Int) -> Double? {
    relativeError(predicted: Double(predicted), measured: Double(measured))
}
