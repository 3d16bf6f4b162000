//! Writes every target's seed inputs (real encodings, see `cairn_fuzz::seeds`) to
//! `OUT/<target>/<name>`, and AFL++ dictionaries to `OUT/<target>.dict`.
//!
//! Usage: `seed OUT [TARGET...]` (no target: all of them).

use cairn_fuzz::{seeds, targets};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: seed OUT [TARGET...]");
        return ExitCode::from(2);
    };
    let wanted: Vec<String> = args.collect();
    let mut chosen = Vec::new();
    for name in &wanted {
        match targets::lookup(name) {
            Some(target) => chosen.push(target),
            None => {
                let names: Vec<_> = targets::TARGETS.iter().map(|t| t.name).collect();
                eprintln!(
                    "error: unknown target {name:?}; targets: {}",
                    names.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    if chosen.is_empty() {
        chosen = targets::TARGETS.iter().collect();
    }
    for target in chosen {
        if let Err(e) = write(&out, target.name) {
            eprintln!(
                "error: writing the seeds of {} under {}: {e}",
                target.name,
                out.display()
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn write(out: &std::path::Path, name: &str) -> std::io::Result<()> {
    let dir = out.join(name);
    std::fs::create_dir_all(&dir)?;
    let seeds = seeds::seeds(name);
    for (file, bytes) in &seeds {
        std::fs::write(dir.join(file), bytes)?;
    }
    if let Some(dict) = seeds::dictionary(name) {
        std::fs::write(out.join(format!("{name}.dict")), dict)?;
    }
    println!("{name}: {} seeds in {}", seeds.len(), dir.display());
    Ok(())
}
