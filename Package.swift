// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "peft-plan",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "PEFTPlan", targets: ["PEFTPlan"]),
        .library(name: "PEFTEngine", targets: ["PEFTEngine"]),
        .library(name: "PEFTCalibration", targets: ["PEFTCalibration"]),
        .library(name: "PEFTOutput", targets: ["PEFTOutput"]),
        .library(name: "PEFTEmit", targets: ["PEFTEmit"]),
        .library(name: "PEFTHub", targets: ["PEFTHub"]),
        .library(name: "PEFTReport", targets: ["PEFTReport"]),
        .executable(name: "peft-plan", targets: ["peft-plan"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // MARK: - The pure model

        /// Architectures, methods and their parameter accounting, the memory model,
        /// hardware profiles and the planner. Foundation only; no I/O beyond reading
        /// the files it is given.
        .target(
            name: "PEFTPlan",
            exclude: ["README.md"],
            resources: [.copy("Resources/hardware-profiles"), .copy("Resources/models"), .copy("Resources/prices"), .copy("Resources/python")]
        ),

        // MARK: - The training engine

        /// OpenBLAS through a one-line shim; pkg-config supplies the include path.
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),

        /// glibc's malloc accounting (`mallinfo2`), to cross-check the engine's ledger.
        .systemLibrary(name: "CMalloc"),

        /// A real CPU trainer whose every buffer is counted by memory category.
        .target(
            name: "PEFTEngine",
            dependencies: ["COpenBLAS", "CMalloc"],
            exclude: ["README.md"]
        ),

        // MARK: - Calibration

        /// Bursts on the engine (and, through a Python bridge, on PyTorch), measured against
        /// the planner's predictions per component.
        .target(
            name: "PEFTCalibration",
            dependencies: ["PEFTPlan", "PEFTEngine"],
            exclude: ["README.md"]
        ),

        // MARK: - Output for people and scripts

        /// Tables, JSON, CSV and markdown of plans, searches, serving plans, claims and the
        /// listings; the model's own messages write units with `PEFTPlan.Units`.
        .target(
            name: "PEFTOutput",
            dependencies: ["PEFTPlan"],
            exclude: ["README.md"]
        ),

        // MARK: - Models by Hub id

        /// `ORG/NAME[@REVISION]`: config.json from Hugging Face's cache, peft-plan's cache of
        /// earlier fetches, or the Hub (FoundationNetworking on Linux).
        .target(
            name: "PEFTHub",
            dependencies: ["PEFTPlan"],
            exclude: ["README.md"]
        ),

        // MARK: - Hand-over to the training engines

        /// DeepSpeed JSON, Accelerate YAML and TRL scripts that run a plan as planned.
        .target(
            name: "PEFTEmit",
            dependencies: ["PEFTPlan", "PEFTOutput"],
            exclude: ["README.md"]
        ),

        // MARK: - Reports

        /// Cairo through a one-header shim; pkg-config supplies the paths.
        .systemLibrary(
            name: "CCairo",
            pkgConfig: "cairo",
            providers: [.apt(["libcairo2-dev"])]
        ),

        /// Charts and the budget-review document, drawn with Cairo (PDF, SVG, PNG).
        .target(
            name: "PEFTReport",
            dependencies: ["PEFTPlan", "PEFTOutput", "CCairo"],
            exclude: ["README.md"]
        ),

        // MARK: - The command line (parsing and printing only) and its executables

        /// The commands, as a library so that the fuzz target and the tests reach the parser.
        .target(
            name: "PEFTCommands",
            dependencies: [
                "PEFTPlan",
                "PEFTEngine",
                "PEFTCalibration",
                "PEFTEmit",
                "PEFTHub",
                "PEFTOutput",
                "PEFTReport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["README.md"]
        ),

        .executableTarget(
            name: "peft-plan",
            dependencies: ["PEFTCommands"]
        ),

        /// libFuzzer target over the readers and the parser (scripts/fuzz.sh builds it with
        /// --sanitize fuzzer; a plain build links an empty program).
        .executableTarget(
            name: "peft-plan-fuzz",
            dependencies: ["PEFTCommands"]
        ),

        // MARK: - Tests

        /// What the suites share: the repository's root, the built binary, the Python
        /// reference scripts that run the real PyTorch, Transformers and PEFT.
        .target(
            name: "PEFTTestSupport",
            dependencies: ["PEFTCalibration"],
            path: "Tests/PEFTTestSupport"
        ),

        .testTarget(
            name: "PEFTPlanTests",
            dependencies: ["PEFTPlan", "PEFTEngine", "PEFTCalibration", "PEFTEmit", "PEFTOutput", "PEFTReport", "PEFTCommands", "PEFTHub", "PEFTTestSupport",
                           .product(name: "PropertyBased", package: "swift-property-based")],
            resources: [.copy("Fixtures")]
        ),
    ]
)
