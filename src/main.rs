//! `conceptree` command line: the clap types of [`args`] turned into typed configs and handed to
//! [`commands`]; errors become exit codes through [`conceptree::Error::exit_code`] (0 ok, 1
//! failure, 2 bad usage or bad input).
mod args;
mod commands;
mod render;

use clap::{CommandFactory, FromArgMatches};

use args::*;
use conceptree::train::TrainConfig;
use conceptree::Error;

fn main() {
    // a closed output pipe (`conceptree ... | head`) ends the program quietly instead of panicking
    commands::reset_sigpipe();
    let matches = negative_numbers_reach_range_checks(Cli::command()).try_get_matches().unwrap_or_else(|e| range_message_for_negatives(e).exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // libtorch's CUDA library before any libtorch call, for every command that may use a device
    // (src/cuda.rs); the light ones never map it
    if !cli.cmd.never_uses_a_device() {
        if let conceptree::cuda::CudaLib::Failed(why) = conceptree::cuda::load() {
            eprintln!("warning: libtorch's CUDA library could not be loaded, so CUDA is unavailable: {why}");
        }
    }
    if let Err(e) = run(cli, &matches) {
        commands::report_error(&e);
        std::process::exit(e.exit_code());
    }
}

fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<(), Error> {
    match cli.cmd {
        Command::Doctor => commands::doctor(),
        Command::Data(c) => data(c),
        Command::Train(a) => match a.resume.clone() {
            Some(run) => {
                let given = explicit_options(matches.subcommand_matches("train").expect("train"), &["resume"]);
                if !given.is_empty() {
                    return Err(Error::usage(format!("--resume continues a run with the options it was started with; --{} cannot be given with it", given.join(", --"))));
                }
                commands::resume(&run)
            }
            None => {
                let force = a.force;
                let cfg = a.into_config();
                // an option typed for a run it does not apply to is refused, not ignored
                cfg.refuse_inapplicable(explicit_options(matches.subcommand_matches("train").expect("train"), &[]).iter().map(String::as_str))?;
                commands::train(cfg, force)
            }
        },
        Command::Predict(a) => commands::predict(commands::PredictCommand {
            model: a.model,
            images: a.images,
            ids: a.ids,
            out: a.out,
            explain: a.explain,
            batch_size: a.batch_size,
            device: a.device,
            skip_bad: a.skip_bad,
            resume: a.resume,
            shard: a.shard,
            load: conceptree::predict::LoadOptions { ontology: a.ontology, threshold: a.threshold, allow_unfinished: a.allow_unfinished, allow_ontology_change: a.allow_ontology_change },
        }),
        Command::Merge(a) => commands::merge(&a.shards, &a.out, a.explain.as_deref()),
        Command::Export(a) => commands::export(conceptree::predict::export::ExportConfig { model: a.model, out: a.out, examples: a.examples, force: a.force }),
        Command::Experiment(ExperimentCmd::Paper { labels, images, out, groups, runs, common }) => {
            let given = explicit_options(experiment_matches(matches, "paper"), &[]);
            let base = common.into_config(TrainConfig { train_labels: labels.clone(), images: images.clone(), out: out.clone(), ..TrainConfig::default() });
            let cfg = conceptree::experiment::ExperimentConfig { labels, images, out, groups, base, runs };
            conceptree::experiment::paper::refuse_unused_options(&cfg, given.iter().map(String::as_str))?;
            commands::experiment_paper(cfg)
        }
        Command::Experiment(ExperimentCmd::Compare { labels, images, out, groups, test_labels, test_images, runs, seeds, split_seed, baseline, threshold_min_cases, trunk_weights, common }) => {
            let given = explicit_options(experiment_matches(matches, "compare"), &[]);
            let base = common.into_config(TrainConfig { train_labels: labels.clone(), images: images.clone(), out: out.clone(), ..TrainConfig::default() });
            let test = test_labels.zip(test_images);
            let cfg = conceptree::experiment::compare::CompareConfig { labels, images, groups, test, out, base, runs, seeds: (1..=seeds).collect(), split_seed, baseline, threshold_min_cases, trunk_weights: one_file_per_trunk(trunk_weights)? };
            conceptree::experiment::compare::refuse_unused_options(&cfg, given.iter().map(String::as_str))?;
            commands::experiment_compare(cfg)
        }
        Command::Evaluate(a) => commands::evaluate(commands::EvaluateCommand {
            gt: a.gt,
            pred: a.pred,
            ontology: a.ontology,
            format: a.format,
            allow_missing: a.allow_missing,
            json: a.json,
            secondary: a.secondary,
            secondary_levels: a.secondary_levels,
        }),
        Command::Analyse(a) => {
            let cfg = conceptree::report::analyse::AnalyseConfig { samples_per_kind: a.samples, images: a.images, ..Default::default() };
            commands::analyse(commands::AnalyseCommand { gt: a.gt, pred: a.pred, out: a.out, ontology: a.ontology, scores: a.scores, format: a.format, allow_missing: a.allow_missing, cfg })
        }
        Command::Ontology(c) => ontology(c),
        Command::Review(c) => review(c),
    }
}

fn data(c: DataCmd) -> Result<(), Error> {
    match c {
        DataCmd::Synth { out, n, image_size, seed, force, annotations } => commands::synth(&out, conceptree::synth::SynthConfig { n, size: image_size, seed, annotations, ..Default::default() }, force),
        DataCmd::Stats { labels, format, top_k, min_count, plot, ontology, json } => commands::data_stats(&labels, format, top_k, min_count, plot.as_deref(), ontology.as_deref(), json),
        DataCmd::Ceiling { labels, format, top_k, levels, noise, ontology, json } => commands::data_ceiling(&labels, format, &top_k, &levels, noise, ontology.as_deref(), json),
        DataCmd::Cache { labels, images, image_size, out, skip_bad, force } => commands::data_cache(&labels, &images, image_size, &out, skip_bad, force),
        DataCmd::ImportFolders { root, out } => commands::import_folders(&root, &out),
        DataCmd::ExportFolders { labels, images, out, top_k } => commands::export_folders(&labels, &images, &out, top_k),
    }
}

fn ontology(c: OntologyCmd) -> Result<(), Error> {
    match c {
        OntologyCmd::Validate { files } => commands::ontology_validate(&files),
        OntologyCmd::Stats { ontology, json } => commands::ontology_stats(ontology.as_deref(), json),
        OntologyCmd::Show { cui, ontology } => commands::ontology_show(&cui, ontology.as_deref()),
        OntologyCmd::Map { labels, format, ontology, semtypes, json } => commands::ontology_map(&labels, format, ontology.as_deref(), semtypes.as_deref(), json),
        OntologyCmd::Dot { root, level, ontology, out } => commands::ontology_dot(root.as_deref(), level, ontology.as_deref(), out.as_deref()),
        OntologyCmd::FromUmls { rrf, labels, out } => commands::ontology_from_umls(&rrf, labels.as_deref(), &out),
    }
}

fn review(c: ReviewCmd) -> Result<(), Error> {
    match c {
        ReviewCmd::Serve(a) => {
            let a = *a;
            let (bind, bind_name) = conceptree::review::resolve_bind(&a.bind)?;
            let cfg = conceptree::review::ServeConfig {
                db: a.db,
                images: a.images,
                preds: a.preds,
                explain: a.explain,
                gt: a.gt,
                ontology: a.ontology,
                synonyms: a.synonyms,
                reviewer: a.reviewer,
                sample: a.sample,
                seed: a.seed,
                strategy: a.strategy,
                blind: a.blind,
                bind,
                bind_name,
                port: a.port,
                token: a.token,
            };
            commands::review_serve(cfg, a.token_file.as_deref())
        }
        ReviewCmd::Report { db, out, json, images, bootstrap, max_images } => {
            let opts = conceptree::review::report::ReportOptions { bootstrap, max_images, images, thumbnails: out.is_some() };
            commands::review_report(&db, out.as_deref(), json, &opts)
        }
        ReviewCmd::Export { db, out, format } => commands::review_export(&db, &out, format),
    }
}

/// The matches of `experiment <name>`.
fn experiment_matches<'a>(m: &'a clap::ArgMatches, name: &str) -> &'a clap::ArgMatches {
    m.subcommand_matches("experiment").and_then(|e| e.subcommand_matches(name)).expect("experiment subcommand")
}

/// The options of `m` given on the command line, except `allowed`.
fn explicit_options(m: &clap::ArgMatches, allowed: &[&str]) -> Vec<String> {
    let mut given: Vec<String> = m
        .ids()
        .map(|id| id.as_str())
        .filter(|id| !allowed.contains(id) && m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.replace('_', "-"))
        .collect();
    given.sort();
    given
}

/// `--trunk-weights` as a map, refusing a trunk named twice (the second file would silently win).
fn one_file_per_trunk(given: Vec<(conceptree::model::TrunkKind, std::path::PathBuf)>) -> Result<std::collections::BTreeMap<conceptree::model::TrunkKind, std::path::PathBuf>, Error> {
    let mut map = std::collections::BTreeMap::new();
    for (trunk, file) in given {
        if let Some(first) = map.insert(trunk, file) {
            return Err(Error::usage(format!("--trunk-weights names {trunk} twice ({} and another file): give one file per trunk", first.display())));
        }
    }
    Ok(map)
}
