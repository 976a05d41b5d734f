//! pddflow's command-line tools, apart from the GStreamer plugin so that the plugin carries only
//! what it needs: the evaluation of mask propagation behind `pddflow-eval` and `pddflow-bench`
//! ([`eval`], the protocol of docs/evaluation.md) and the phantom dataset writer behind
//! `pddflow-phantom` ([`phantom_dataset`]). Argument parsing, progress bars, plots and error
//! context (clap, indicatif, plotters, anyhow) are dependencies of this crate only.

pub mod eval;
pub mod phantom_dataset;
