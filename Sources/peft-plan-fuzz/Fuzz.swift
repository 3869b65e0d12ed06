import Foundation
import PEFTCommands

// libFuzzer's entry point. Built only by `scripts/fuzz.sh` (swift build --sanitize fuzzer
// --sanitize address --product peft-plan-fuzz); the target comes from PEFT_FUZZ_TARGET
// (config, hardware, calibration or cli). A plain build links it without libFuzzer, and
// then it does nothing.

let fuzzTarget = FuzzInput.Target(rawValue: ProcessInfo.processInfo.environment["PEFT_FUZZ_TARGET"] ?? "config") ?? .config

@_cdecl("LLVMFuzzerTestOneInput")
public func peftPlanFuzz(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    FuzzInput.run(fuzzTarget, Data(bytes: bytes, count: count))
    return 0
}
