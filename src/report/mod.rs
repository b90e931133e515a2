//! Reports: plots, error analysis and HTML/Markdown summaries.
pub mod plot;
