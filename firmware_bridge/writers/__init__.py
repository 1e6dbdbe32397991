"""Writers: CSI batches -> the byte formats real firmware and tools produce (for replay, tests, export)."""
