// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "peft-plan",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "PEFTPlan", targets: ["PEFTPlan"]),
        .executable(name: "peft-plan", targets: ["peft-plan"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // MARK: - The pure model

        /// Architectures, methods and their parameter accounting, the memory model,
        /// hardware profiles and the planner. Foundation only; no I/O beyond reading
        /// the files it is given.
        .target(
            name: "PEFTPlan",
            exclude: ["README.md"],
            resources: [.copy("Resources/hardware-profiles"), .copy("Resources/models")]
        ),

        // MARK: - The executable (thin: parsing and printing only)

        .executableTarget(
            name: "peft-plan",
            dependencies: [
                "PEFTPlan",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: - Tests

        .testTarget(
            name: "PEFTPlanTests",
            dependencies: ["PEFTPlan"],
            resources: [.copy("Fixtures")]
        ),
    ]
)
