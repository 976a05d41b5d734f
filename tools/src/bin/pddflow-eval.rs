//! pddflow-eval: propagates each sequence's reference mask through the `pddflow` element (or scores
//! predictions written by another method) and reports Dice, HD95 and HD per class with the
//! evaluation protocol (docs/evaluation.md). Beside them, as models/train/pddflow_train/evaluate.py
//! does, each class reports its Dice over the *open* frames and, over the *closed* ones (true area
//! below 10 % of the reference mask's: a vein pressed shut, whose truth is a sliver), the predicted
//! and true areas as % of the reference area; the Markdown tables show these columns only for
//! classes that close. A second table shows the overall Dice over the first and last 100 scored
//! frames (thirds of shorter sequences) and their drift, per class the median and max of
//! predicted/true area and the extra 4-connected regions per frame, and the Spearman correlation of
//! the element's `tracking-confidence` with each frame's Dice (element runs only).
//!
//! ```text
//! pddflow-eval --dataset DIR --predictions OUT [--mode keyframe|chain|hybrid] [--model DIR]
//!              [--execution-provider cpu|cuda|auto] [--working-size N]
//!              [--reference first|random --seed N]
//!              [--report STEM] [--name METHOD]
//! pddflow-eval --dataset DIR --score-predictions PRED --name METHOD [--report STEM]
//! pddflow-eval --compare A.json B.json ... [--output TABLE.md]
//! ```

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, ValueEnum};
use gstpddflow::engine::ProviderRequest;
use gstpddflow::flow::tracker::Mode;
use indicatif::{ProgressBar, ProgressStyle};
use pddflow_tools::eval::{
    dataset::{Dataset, ReferenceChoice},
    evaluate_element, frames_to_push,
    report::{comparison_markdown, Report},
    run::ElementConfig,
    score_predictions, write_report,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

/// A clap parser for a type that has names: its possible values are those names.
fn named<T: FromStr<Err = String> + Clone + Send + Sync + 'static>(
    names: impl IntoIterator<Item = &'static str>,
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(names).try_map(|name| name.parse::<T>())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Reference {
    First,
    Random,
}

/// Evaluates mask propagation on a dataset (DATASET/<sequence>/{frames,masks}/NNNNNN.png) with
/// the paper's protocol: the reference frame's mask is propagated to every later frame, and
/// every later annotated frame is scored (Dice, HD95, HD per class; mean ± std over sequences).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Dataset directory (or a single sequence directory).
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Run the pddflow element and write its masks to OUT/<sequence>/masks/.
    #[arg(long, value_name = "OUT")]
    predictions: Option<PathBuf>,
    /// Score the masks in PRED/<sequence>/masks/ instead of running the element.
    #[arg(long, value_name = "PRED", conflicts_with = "predictions")]
    score_predictions: Option<PathBuf>,
    /// Method name in the report (default: "pddflow MODE", or the predictions' manifest).
    #[arg(long)]
    name: Option<String>,
    #[arg(long, default_value = "keyframe", value_parser = named::<Mode>(Mode::ALL.map(Mode::name)))]
    mode: Mode,
    /// Model directory (features.onnx, flow.onnx, model.json); default: the built-in model.
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value = "cpu", value_parser = named::<ProviderRequest>(ProviderRequest::ALL.map(ProviderRequest::name)))]
    execution_provider: ProviderRequest,
    /// Fail instead of falling back to CPU when CUDA cannot be used.
    #[arg(long)]
    strict_provider: bool,
    /// ONNX Runtime threads (0: let it choose).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// The element's working-size: the longest side in pixels of the input size the flow runs
    /// at, one of the model's input_sizes (0: the model's default).
    #[arg(long, default_value_t = 0)]
    working_size: u32,
    /// The element's vein-closed verdict from the area ratio alone (`lumen-evidence=false`).
    #[arg(long)]
    area_only_verdict: bool,
    /// Reference frame: the first, or a random annotated frame in the first fifth.
    #[arg(long, value_enum, default_value = "first")]
    reference: Reference,
    /// Seed of --reference random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Report file stem: writes STEM.md, STEM.json and STEM-dice.png (default: OUT/report).
    #[arg(long, value_name = "STEM")]
    report: Option<PathBuf>,
    /// Merge JSON reports into one comparison table (Markdown on stdout or --output).
    #[arg(long, num_args = 1.., value_name = "REPORT.json", conflicts_with_all = ["predictions", "score_predictions"])]
    compare: Vec<PathBuf>,
    /// Where --compare writes its table.
    #[arg(long, requires = "compare")]
    output: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pddflow-eval: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    if !args.compare.is_empty() {
        let reports = args
            .compare
            .iter()
            .map(|p| Report::load(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let table = comparison_markdown(&reports);
        match &args.output {
            Some(path) => std::fs::write(path, &table)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
            None => print!("{table}"),
        }
        return Ok(());
    }
    let dataset_dir = args
        .dataset
        .as_ref()
        .ok_or("--dataset DIR is required (or --compare REPORT.json...)")?;
    let dataset = Dataset::open(dataset_dir).map_err(|e| e.to_string())?;
    let choice = match args.reference {
        Reference::First => ReferenceChoice::First,
        Reference::Random => ReferenceChoice::Random { seed: args.seed },
    };
    let mode = args.mode.name();
    let (report, default_stem) = if let Some(pred) = &args.score_predictions {
        let name = match &args.name {
            Some(n) => n.clone(),
            None => pddflow_tools::eval::Manifest::read(pred)
                .map_err(|e| e.to_string())?
                .map(|m| m.method)
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| pred.display().to_string()),
        };
        let report = score_predictions(&dataset, choice, pred, &name).map_err(|e| e.to_string())?;
        (report, pred.join("report"))
    } else {
        let out = args.predictions.as_ref().ok_or(
            "give --predictions OUT (run the element) or --score-predictions PRED (score masks)",
        )?;
        let config = ElementConfig {
            mode: mode.into(),
            model: args.model.clone(),
            execution_provider: args.execution_provider.name().into(),
            strict_provider: args.strict_provider,
            threads: args.threads,
            working_size: args.working_size,
            lumen_evidence: !args.area_only_verdict,
        };
        let total = frames_to_push(&dataset, choice).map_err(|e| e.to_string())?;
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:40}] {pos}/{len} frames {per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("pddflow {mode}"));
        let report = evaluate_element(&dataset, choice, &config, &name, out, &|seq| {
            bar.set_prefix(seq.to_string());
            bar.inc(1);
        })
        .map_err(|e| {
            bar.abandon();
            e.to_string()
        })?;
        bar.finish_and_clear();
        (report, out.join("report"))
    };
    let stem = args.report.clone().unwrap_or(default_stem);
    let written = write_report(&report, &stem).map_err(|e| e.to_string())?;
    print!("{}", report.to_markdown());
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
