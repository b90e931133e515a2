//! Reports: plots, error analysis and HTML/Markdown summaries.
pub mod analyse;
pub mod figures;
pub mod html;
pub mod plot;
