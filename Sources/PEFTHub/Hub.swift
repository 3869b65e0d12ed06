import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import PEFTPlan

/// A model named by its Hugging Face Hub id, `ORG/NAME` or `ORG/NAME@REVISION`, whose
/// `config.json` is read from Hugging Face's local cache, else from the Hub.
///
/// Where things are, as `huggingface_hub` lays them out (its documentation, "Manage
/// huggingface_hub cache-system", and `constants.py`):
/// - the cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`; a
///   model's files under `models--ORG--NAME/snapshots/<commit>/`, and `refs/<revision>`
///   holding the commit a branch or tag points at;
/// - the token: `$HF_TOKEN`, else the file `huggingface-cli login` writes, `$HF_HOME/token`
///   (default `~/.cache/huggingface/token`);
/// - the Hub: `$HF_ENDPOINT` (default https://huggingface.co), the file at
///   `/ORG/NAME/resolve/REVISION/config.json`; `$HF_HUB_OFFLINE=1` forbids the network.
///
/// What is fetched is kept in peft-plan's own cache (``HubModel/fetchedCache``), never in
/// Hugging Face's, whose layout its tools own. The token is sent only to the endpoint's host
/// (a redirect elsewhere drops it) and is never printed or written.
public struct HubModel: Equatable, Sendable {
    public var org: String
    public var name: String
    /// A branch, tag or commit; "main" when the id names none.
    public var revision: String

    /// The id as the user wrote it, without a default revision.
    public var id: String { "\(org)/\(name)" }

    /// Parses `ORG/NAME[@REVISION]`; nil for anything else (a path, a preset name).
    /// Hub names are letters, digits, `-`, `_` and `.`, at most 96 characters, and not `.`
    /// or `..`; a revision adds `/` (branches such as `refs/pr/1`).
    public init?(_ text: String) {
        var rest = Substring(text)
        var rev = "main"
        if let at = rest.firstIndex(of: "@") {
            rev = String(rest[rest.index(after: at)...])
            rest = rest[..<at]
            guard Self.validRevision(rev) else { return nil }
        }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ Self.validName($0) }) else { return nil }
        org = String(parts[0])
        name = String(parts[1])
        revision = rev
    }

    static func validName(_ s: Substring) -> Bool {
        !s.isEmpty && s.count <= 96 && s != "." && s != ".." && !s.hasPrefix("-")
            && s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_.".unicodeScalars.contains($0) }
    }

    static func validRevision(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 256 && !s.contains("..") && !s.hasPrefix("/") && !s.hasSuffix("/")
            && s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_./".unicodeScalars.contains($0) }
    }

    /// The revision as a path component of a URL (`refs/pr/1` → `refs%2Fpr%2F1`).
    var revisionInURL: String { revision.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? revision }

    /// Whether the revision is a full commit hash (then the snapshot is addressed directly).
    var revisionIsCommit: Bool { revision.count == 40 && revision.allSatisfy { $0.isHexDigit && !$0.isUppercase } }

    /// The folder name both caches use for the model.
    var folderName: String { "models--\(org)--\(name)" }
}

/// Where a configuration came from, for the plan's assumptions.
public struct HubSource: Equatable, Sendable {
    public enum Origin: Equatable, Sendable {
        /// Hugging Face's local cache (a model the user downloaded).
        case huggingFaceCache
        /// Fetched from the Hub now, and kept at `savedAt` (nil when it could not be kept).
        case fetched(savedAt: String?)
        /// peft-plan's own cache, from an earlier fetch.
        case peftPlanCache
    }
    public var origin: Origin
    /// The file the configuration was read from, or the URL it was fetched from.
    public var location: String
    /// The commit, where known.
    public var commit: String?
}

/// The environment the Hub reader follows (the process's by default; tests give their own).
public struct HubEnvironment: Sendable {
    public var variables: [String: String]
    public var home: String

    /// `home` defaults to `$HOME` (as `huggingface_hub` expands `~`), else the account's.
    public init(variables: [String: String] = ProcessInfo.processInfo.environment, home: String? = nil) {
        self.variables = variables
        self.home = home ?? variables["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? FileManager.default.homeDirectoryForCurrentUser.path
    }

    func value(_ key: String) -> String? {
        guard let v = variables[key]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
        return v
    }

    /// `$HF_HOME`, default `~/.cache/huggingface`.
    var hfHome: String { value("HF_HOME") ?? (home as NSString).appendingPathComponent(".cache/huggingface") }
    /// `$HF_HUB_CACHE`, else `$HF_HOME/hub`.
    public var hubCache: String { value("HF_HUB_CACHE") ?? (hfHome as NSString).appendingPathComponent("hub") }
    /// peft-plan's own cache of fetched configs: `$XDG_CACHE_HOME/peft-plan/hub`, default
    /// `~/.cache/peft-plan/hub`.
    public var fetchedCache: String {
        let base = value("XDG_CACHE_HOME") ?? (home as NSString).appendingPathComponent(".cache")
        return (base as NSString).appendingPathComponent("peft-plan/hub")
    }
    var endpoint: String { (value("HF_ENDPOINT") ?? "https://huggingface.co").trimmingCharacters(in: CharacterSet(charactersIn: "/")) }
    var offline: Bool { ["1", "true", "yes", "on"].contains(value("HF_HUB_OFFLINE")?.lowercased() ?? "") }
    /// Seconds to wait for the Hub (`PEFT_PLAN_HUB_TIMEOUT`, default 20).
    var timeout: Double { value("PEFT_PLAN_HUB_TIMEOUT").flatMap(Double.init).flatMap { $0.isFinite && $0 > 0 ? min($0, 600) : nil } ?? 20 }

    /// `$HF_TOKEN`, else the token file; nil when neither has one.
    var token: String? {
        if let t = value("HF_TOKEN") { return t }
        let file = value("HF_TOKEN_PATH") ?? (hfHome as NSString).appendingPathComponent("token")
        guard let data = FileManager.default.contents(atPath: file), data.count <= 4096,
              let t = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty else { return nil }
        return t
    }
}
