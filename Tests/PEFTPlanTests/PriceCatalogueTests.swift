import Foundation
import Testing
import PEFTTestSupport
@testable import PEFTPlan

/// The dated price catalogue (Resources/prices/catalogue.json) and planning with `--provider`.
@Suite("Prices by provider")
struct PriceCatalogueTests {
    @Test("the bundled catalogue loads: every offer dated and sourced, several providers, kinds and tiers")
    func bundled() throws {
        let c = try PriceCatalogue.bundled()
        #expect(c.providers.count >= 5 && c.offers.count >= 30)
        #expect(Set(c.providers.map(\.kind)) == ["hyperscaler", "gpu-cloud", "marketplace"])
        #expect(Set(c.offers.map(\.tier)).isSuperset(of: ["on-demand", "spot", "community"]))
        for p in c.providers { #expect(c.offers.contains { $0.provider == p.name }, "\(p.name) has no offer") }
    }

    /// Each provider's rule as its billing page states it (Resources/prices/catalogue.json).
    @Test("billing rounds up to the provider's increment, never below its minimum")
    func billing() throws {
        let c = try PriceCatalogue.bundled()
        let aws = try #require(c.provider(named: "aws")).billing          // per second, 60 s minimum
        #expect(aws.billedSeconds(30) == 60)
        #expect(aws.billedSeconds(90.2) == 91)
        let lambda = try #require(c.provider(named: "Lambda")).billing    // one-minute increments
        #expect(lambda.billedSeconds(61) == 120)
        #expect(lambda.billedSeconds(3600) == 3600)
        let runpod = try #require(c.provider(named: "RunPod")).billing    // by the second
        #expect(runpod.billedSeconds(3600.4) == 3601)
    }

    func plan(_ args: [String]) throws -> [String: Any] {
        let r = try CLI.run(["--model", "8b", "--method", "lora", "--format", "json"] + args)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        return ((j["plans"] as! [[String: Any]])[0]["gpus"] as! [[String: Any]])[0]
    }

    /// Lambda's catalogue rows: A100 40GB only as an 8-GPU instance at $1.99 per GPU-hour; H100
    /// SXM as 8 GPUs at $3.99 and as one at $4.29 (2026-09 captures of lambda.ai's pricing).
    @Test("a provider's offer prices the plan: whole instances charged, billed by the minute, its source named")
    func providerPrices() throws {
        let a100 = try plan(["--provider", "lambda", "--gpu", "A100 40GB SXM"])
        let time = a100["time"] as! [String: Any], price = time["price"] as! [String: Any]
        #expect(time["price_usd_per_gpu_hour"] as? Double == 1.99)
        #expect(price["provider"] as? String == "Lambda" && price["charged_gpus"] as? Int == 8)
        #expect((price["source"] as? String)?.hasPrefix("https://") == true && price["date"] as? String == "2026-09-20")
        let hours = try #require(a100["hours"] as? Double), billed = try #require(price["billed_hours"] as? Double)
        #expect(billed >= hours && billed - hours < 1.0 / 60 + 1e-9)
        #expect(abs((billed * 60).rounded() - billed * 60) < 1e-6, "billed in whole minutes")
        #expect(abs(try #require(a100["cost_usd"] as? Double) - billed * 8 * 1.99) < 1e-6)
        // one H100: the single-GPU offer; eight: the 8-GPU instance, cheaper per GPU
        let one = try plan(["--provider", "lambda", "--gpu", "H100 SXM"])
        #expect((one["time"] as! [String: Any])["price_usd_per_gpu_hour"] as? Double == 4.29)
        let eight = try plan(["--provider", "lambda", "--gpu", "H100 SXM", "--gpus", "8"])
        #expect((eight["time"] as! [String: Any])["price_usd_per_gpu_hour"] as? Double == 3.99)
    }

    @Test("without --gpu, a provider's plan covers every GPU it offers, and the table names each offer")
    func providerGPUs() throws {
        let r = try CLI.run(["--model", "8b", "--method", "lora", "--provider", "RunPod"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let offered = try PriceCatalogue.bundled().gpus(provider: "RunPod")
        for g in offered { #expect(r.stdout.contains("- \(g): $"), "no price line for \(g)") }
        #expect(r.stdout.contains("billed per second"))
    }

    /// `--provider all`: each provider's cheapest offer of the GPU, billed by its own rule
    /// (Lambda by the minute, RunPod by the second, AWS by the second with a minute's minimum),
    /// listed cheapest first; the plan's cost is the first.
    @Test("--provider all compares every provider's offer of the GPU, each billed its own way")
    func allProviders() throws {
        let catalogue = try PriceCatalogue.bundled()
        let h100 = try plan(["--provider", "all", "--gpu", "H100 SXM"])
        let time = h100["time"] as! [String: Any], price = time["price"] as! [String: Any]
        let quotes = try #require(price["quotes"] as? [[String: Any]])
        let offering = Set(catalogue.offers.filter { $0.gpu == "H100 SXM" && $0.tier == "on-demand" }.map(\.provider))
        #expect(Set(quotes.compactMap { $0["provider"] as? String }) == offering && offering.count >= 4)
        let costs = quotes.compactMap { $0["cost_usd"] as? Double }
        #expect(costs == costs.sorted() && costs.first == h100["cost_usd"] as? Double)
        let hours = try #require(h100["hours"] as? Double)
        for q in quotes {
            let name = q["provider"] as! String
            let billing = try #require(catalogue.provider(named: name)).billing
            let billed = try #require(q["billed_hours"] as? Double)
            #expect(abs(billed - billing.billedSeconds(hours * 3600) / 3600) < 1e-9, "\(name): billed \(billed) h for \(hours) h")
            let cost = billed * Double(q["charged_gpus"] as! Int) * (q["usd_per_gpu_hour"] as! Double)
            #expect(abs(cost - (q["cost_usd"] as! Double)) < 1e-6)
            let p10 = try #require(q["cost_usd_p10"] as? Double), p90 = try #require(q["cost_usd_p90"] as? Double)
            #expect(p10 < cost && cost < p90, "\(name): range \(p10)–\(p90) around \(cost)")
        }
        // the range of the plan itself brackets its hours and dollars
        let range = time["range"] as! [String: Any]
        #expect((range["hours_p10"] as! Double) < hours && hours < (range["hours_p90"] as! Double))
        #expect(!(range["basis"] as? String ?? "").isEmpty)
    }

    /// `--spot`: interruptible tiers only; with no interruptions the cost is the spot price
    /// billed over the same hours; interruptions and a longer restart add time and money.
    @Test("--spot prices interruptible offers and charges the time interruptions lose")
    func spot() throws {
        let catalogue = try PriceCatalogue.bundled()
        let none = try plan(["--spot", "--gpu", "H100 SXM", "--interruptions-per-hour", "0"])
        let onDemand = try plan(["--provider", "all", "--gpu", "H100 SXM"])
        let quotes = ((none["time"] as! [String: Any])["price"] as! [String: Any])["quotes"] as! [[String: Any]]
        #expect(!quotes.isEmpty && quotes.allSatisfy { ["spot", "interruptible"].contains($0["tier"] as? String ?? "") })
        let spotOffers = catalogue.offers.filter { $0.gpu == "H100 SXM" && ["spot", "interruptible"].contains($0.tier) }
        #expect(Set(quotes.map { $0["provider"] as! String }) == Set(spotOffers.map(\.provider)))
        // no interruptions and the adapter's tiny checkpoints: the same hours as on demand
        #expect(abs((none["hours"] as! Double) - (onDemand["hours"] as! Double)) < 0.01)
        let often = try plan(["--spot", "--gpu", "H100 SXM", "--interruptions-per-hour", "0.5", "--restart-minutes", "30"])
        let lost = try #require(((often["time"] as! [String: Any])["price"] as? [String: Any])?["interruption_hours"] as? Double)
        #expect(lost > 0.5, "one interruption every two hours on a multi-hour run loses more than half an hour: \(lost)")
        #expect(abs((often["hours"] as! Double) - lost - (onDemand["hours"] as! Double)) < 1e-6, "the lost time is added to the on-demand hours")
        #expect((often["cost_usd"] as! Double) > (none["cost_usd"] as! Double))
        let table = try CLI.run(["--model", "8b", "--method", "qlora", "--gpu", "24GB", "--spot"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("interruptions per instance-hour") && table.stdout.contains("expected for interruptions"))
    }
}
