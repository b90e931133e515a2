//! Reports: plots, error analysis and HTML/Markdown summaries.
pub mod analyse;
pub mod html;
pub mod plot;
