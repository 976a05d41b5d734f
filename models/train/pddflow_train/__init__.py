"""pddflow's training code: the PDD-Net student (pddnet), data (dataset), teachers (teacher),
training (train), ONNX export (export) and its parity check (parity), evaluation (evaluate,
oracle, flow_variants, table, dice_windows, vein_readout), latency (bench_onnx) and the SIMUS
validation set (simus, speckle_stats). Every tool runs as `python -m pddflow_train.NAME`; see
models/README.md."""
