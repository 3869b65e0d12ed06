import Foundation

/// Ctrl-C during a long run: the first SIGINT asks the run to stop after the current burst
/// (its progress is kept); a second one stops the process at once.
enum Interrupt {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    /// Installs the handler, unless SIGINT is ignored (a background job keeps it so).
    static func install() {
        requested = 0   // initialised here, never first touched inside the handler
        // a launcher may hand the process SIGINT blocked (the mask is inherited): unblock it
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        let previous = signal(SIGINT) { _ in
            Interrupt.requested = 1
            signal(SIGINT, SIG_DFL)
            let note: StaticString = "\npeft-plan: finishing the current burst, then stopping (Ctrl-C again stops at once)\n"
            _ = write(2, note.utf8Start, note.utf8CodeUnitCount)   // async-signal-safe: no allocation
        }
        if isIgnore(previous) { signal(SIGINT, SIG_IGN) }
    }

    /// Back to the default: Ctrl-C after the bursts stops the process at once.
    static func uninstall() {
        if isIgnore(signal(SIGINT, SIG_DFL)) { signal(SIGINT, SIG_IGN) }
    }

    /// Whether a handler is SIG_IGN (C function pointers compare by address).
    static func isIgnore(_ h: __sighandler_t?) -> Bool { unsafeBitCast(h, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) }

    static var wasRequested: Bool { requested != 0 }
}
