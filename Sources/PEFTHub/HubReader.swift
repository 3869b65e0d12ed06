import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import PEFTPlan

/// Reads a Hub model's `config.json`: Hugging Face's local cache, peft-plan's own cache of
/// earlier fetches, then the Hub (unless offline). Every failure is a ``PlanError/hub(model:reason:)``
/// or the config reader's own error: one line that says what to do.
public enum HubReader {
    /// Largest config accepted, as for a file (real ones are a few KiB).
    static let sizeLimit = 16 << 20

    public static func read(_ model: HubModel, environment env: HubEnvironment = HubEnvironment()) throws -> (Architecture, HubSource) {
        let (data, source) = try configData(model, environment: env)
        return (try ConfigReader.parse(data: data, name: model.name, source: source.location), source)
    }

    /// The config's bytes and where they came from.
    public static func configData(_ model: HubModel, environment env: HubEnvironment = HubEnvironment()) throws -> (Data, HubSource) {
        if let hit = try huggingFaceCache(model, env) { return hit }
        let ownFile = ownCachePath(model, env)
        if let data = try readSmall(ownFile, model) { return (data, HubSource(origin: .peftPlanCache, location: ownFile, commit: nil)) }
        if env.offline {
            throw PlanError.hub(model: model.id, reason: "HF_HUB_OFFLINE is set and revision '\(model.revision)' is in neither Hugging Face's cache (\(env.hubCache)) nor peft-plan's (\(env.fetchedCache)); download it (huggingface-cli download \(model.id) config.json) or unset HF_HUB_OFFLINE")
        }
        let (data, commit, url) = try fetch(model, env)
        // a fetched file is kept only once it reads as a config
        _ = try ConfigReader.parse(data: data, name: model.name, source: url)
        let saved = save(data, to: ownFile)
        return (data, HubSource(origin: .fetched(savedAt: saved ? ownFile : nil), location: url, commit: commit))
    }

    // MARK: - Caches

    /// `models--ORG--NAME/snapshots/<commit>/config.json`, the commit a ref names or the
    /// revision itself when it is one.
    static func huggingFaceCache(_ model: HubModel, _ env: HubEnvironment) throws -> (Data, HubSource)? {
        let root = (env.hubCache as NSString).appendingPathComponent(model.folderName)
        var commit: String? = model.revisionIsCommit ? model.revision : nil
        if commit == nil {
            let ref = (root as NSString).appendingPathComponent("refs/\(model.revision)")
            // a ref is a regular file of one commit hash: anything else (empty, huge, a folder)
            // is no ref (and an empty file is never handed to FileManager.contents, which
            // leaks its read buffer for one on Linux — found by the hubcache fuzz target)
            let size = ((try? FileManager.default.attributesOfItem(atPath: ref))?[.size] as? NSNumber)?.intValue ?? 0
            if (40...256).contains(size), let d = FileManager.default.contents(atPath: ref),
               let c = String(data: d, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
               c.count == 40, c.allSatisfy(\.isHexDigit) {
                commit = c
            }
        }
        guard let commit else { return nil }
        let file = (root as NSString).appendingPathComponent("snapshots/\(commit)/config.json")
        guard let data = try readSmall(file, model) else { return nil }
        return (data, HubSource(origin: .huggingFaceCache, location: file, commit: commit))
    }

    static func ownCachePath(_ model: HubModel, _ env: HubEnvironment) -> String {
        (env.fetchedCache as NSString).appendingPathComponent("\(model.folderName)/\(model.revisionInURL)/config.json")
    }

    /// A regular file's bytes, nil when there is none; refuses a huge one.
    static func readSmall(_ path: String, _ model: HubModel) throws -> Data? {
        let url = URL(fileURLWithPath: path).resolvingSymlinksInPath()   // the HF cache links snapshots to blobs
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
              attributes[.type] as? FileAttributeType == .typeRegular else { return nil }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        guard size <= sizeLimit else {
            throw PlanError.unreadableConfig(path: path, reason: "more than any config.json (limit \(sizeLimit >> 20) MiB)")
        }
        // an empty file reads as no bytes (the config reader says it is no JSON) without
        // FileManager.contents, which leaks its buffer for an empty file on Linux
        return size == 0 ? Data() : FileManager.default.contents(atPath: url.path)
    }

    /// Writes the whole file or nothing; false when it cannot be kept (the plan goes on).
    static func save(_ data: Data, to path: String) -> Bool {
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: url, options: .atomic)
            return true
        } catch {
            return false
        }
    }

    // MARK: - The Hub

    static func fetch(_ model: HubModel, _ env: HubEnvironment) throws -> (Data, String?, String) {
        let endpoint = env.endpoint
        guard let base = URL(string: endpoint), let scheme = base.scheme?.lowercased(), scheme == "https" || scheme == "http", base.host != nil else {
            throw PlanError.hub(model: model.id, reason: "HF_ENDPOINT '\(endpoint)' is not an http(s) URL")
        }
        let urlText = "\(endpoint)/\(model.org)/\(model.name)/resolve/\(model.revisionInURL)/config.json"
        guard let url = URL(string: urlText) else { throw PlanError.hub(model: model.id, reason: "cannot form the URL \(urlText)") }
        let token = env.token
        if let token, token.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value > 0x7E }) {
            // a header value with a line break or a space would be refused or, worse, split
            throw PlanError.hub(model: model.id, reason: "the token (HF_TOKEN or the token file) holds spaces, line breaks or other characters no Hugging Face token has; set it again")
        }
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: env.timeout)
        request.setValue("peft-plan", forHTTPHeaderField: "User-Agent")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let result = Transfer(limit: sizeLimit, origin: url).run(request, timeout: env.timeout)

        let page = "\(endpoint)/\(model.org)/\(model.name)"
        switch result {
        case let .failed(error):
            if error.code == .timedOut {
                throw PlanError.hub(model: model.id, reason: "the Hub (\(endpoint)) did not answer within \(String(format: "%g", env.timeout)) s; try again, or set HF_HUB_OFFLINE=1 to use only what is cached")
            }
            if error.code == .networkConnectionLost {
                throw PlanError.hub(model: model.id, reason: "the Hub's answer was cut short (\(urlText)); try again")
            }
            throw PlanError.hub(model: model.id, reason: "cannot reach \(endpoint) (\(error.localizedDescription)); check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only what is cached")
        case .cutShort:
            throw PlanError.hub(model: model.id, reason: "the Hub's answer was cut short (\(urlText)); try again")
        case .tooLarge:
            throw PlanError.hub(model: model.id, reason: "the Hub sent more than \(sizeLimit >> 20) MiB for config.json, which no config is (\(urlText))")
        case let .answered(status, headers, data):
            let errorCode = headers["x-error-code"] ?? ""
            switch status {
            case 200:
                if let expected = headers["content-length"].flatMap(Int.init), expected != data.count {
                    throw PlanError.hub(model: model.id, reason: "the Hub's answer was cut short (\(data.count) of \(expected) bytes); try again")
                }
                return (data, headers["x-repo-commit"], urlText)
            case 401:
                if token != nil {
                    throw PlanError.hub(model: model.id, reason: "the Hub refused the token (HF_TOKEN, or the file huggingface-cli login writes): it is wrong, expired, or may not read \(model.id)")
                }
                throw PlanError.hub(model: model.id, reason: "not found, private or gated: if it is gated, accept the licence on \(page) and set HF_TOKEN to a token of that account; else check the id")
            case 403:
                throw PlanError.hub(model: model.id, reason: "gated: accept the licence on \(page) with the account whose token HF_TOKEN holds (the token was sent and is not allowed yet)")
            case 404:
                let what = errorCode == "RevisionNotFound" ? "revision '\(model.revision)' not found" : (errorCode == "EntryNotFound" ? "the repository has no config.json" : "not found on the Hub")
                throw PlanError.hub(model: model.id, reason: "\(what): check the id\(model.revision == "main" ? "" : " and the revision") (\(page))")
            case 429:
                throw PlanError.hub(model: model.id, reason: "the Hub is rate-limiting this machine (HTTP 429); wait and try again, or set HF_TOKEN")
            default:
                throw PlanError.hub(model: model.id, reason: "the Hub answered HTTP \(status) for \(urlText)")
            }
        }
    }
}

/// One GET, waited for: the status, headers (lower-cased) and body, or why there is none.
/// The body stops at `limit` bytes; a redirect keeps the Authorization header only when
/// it stays on the origin's scheme, host and port.
final class Transfer: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    enum Result {
        case answered(status: Int, headers: [String: String], body: Data)
        case failed(URLError)
        case tooLarge
        /// The answer began (a status came) and then the connection failed.
        case cutShort(URLError)
    }

    private let limit: Int
    private let origin: URL
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var body = Data()
    private var response: HTTPURLResponse?
    private var overLimit = false
    private var error: URLError?

    init(limit: Int, origin: URL) {
        self.limit = limit
        self.origin = origin
    }

    func run(_ request: URLRequest, timeout: Double) -> Result {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        session.dataTask(with: request).resume()
        if done.wait(timeout: .now() + timeout + 5) == .timedOut {
            session.invalidateAndCancel()
            return .failed(URLError(.timedOut))
        }
        lock.lock(); defer { lock.unlock() }
        if overLimit { return .tooLarge }
        if let error { return response == nil ? .failed(error) : .cutShort(error) }
        guard let response else { return .failed(URLError(.badServerResponse)) }
        var headers: [String: String] = [:]
        for (k, v) in response.allHeaderFields { headers["\(k)".lowercased()] = "\(v)" }
        return .answered(status: response.statusCode, headers: headers, body: body)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let http = response as? HTTPURLResponse
        lock.lock()
        self.response = http
        let declared = http.flatMap { Int(($0.value(forHTTPHeaderField: "Content-Length") ?? "")) } ?? 0
        if declared > limit { overLimit = true }
        let cancel = overLimit
        lock.unlock()
        completionHandler(cancel ? .cancel : .allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        lock.lock()
        body.append(data)
        let over = body.count > limit
        if over { overLimit = true; body = Data() }
        lock.unlock()
        if over { dataTask.cancel() }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        var next = request
        let same = request.url?.scheme?.lowercased() == origin.scheme?.lowercased()
            && request.url?.host?.lowercased() == origin.host?.lowercased() && request.url?.port == origin.port
        if !same { next.setValue(nil, forHTTPHeaderField: "Authorization") }
        completionHandler(next)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        lock.lock()
        if let error, !overLimit { self.error = (error as? URLError) ?? URLError(.unknown) }
        lock.unlock()
        done.signal()
    }
}
