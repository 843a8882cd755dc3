//! Fitting a table to its width: columns are dropped, least needed first,
//! before any value is cut; the one flexible column takes what is left,
//! and text that still does not fit ends in an ellipsis.

/// One column a table would like to show.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub header: &'static str,
    /// Columns the values need (sizes keep their units in this).
    pub width: u16,
    /// Takes the room left over (one column per table).
    pub flex: bool,
    /// Higher is kept longer; 9 is never dropped.
    pub keep: u8,
}

pub const fn col(header: &'static str, width: u16, keep: u8) -> Col {
    Col {
        header,
        width,
        flex: false,
        keep,
    }
}

pub const fn flex(header: &'static str, width: u16) -> Col {
    Col {
        header,
        width,
        flex: true,
        keep: 9,
    }
}

/// The columns kept (indices into `cols`, in order) and their widths.
pub fn fit(cols: &[Col], width: u16, spacing: u16) -> Vec<(usize, u16)> {
    let mut kept: Vec<usize> = (0..cols.len()).collect();
    let need = |kept: &[usize]| -> u32 {
        kept.iter().map(|&i| u32::from(cols[i].width)).sum::<u32>()
            + u32::from(spacing) * kept.len().saturating_sub(1) as u32
    };
    while need(&kept) > u32::from(width) {
        let Some((at, _)) = kept
            .iter()
            .enumerate()
            .filter(|(_, &i)| cols[i].keep < 9)
            // The least needed; of equals, the rightmost.
            .min_by_key(|(pos, &i)| (cols[i].keep, std::cmp::Reverse(*pos)))
        else {
            break;
        };
        kept.remove(at);
    }
    let spare = u32::from(width).saturating_sub(need(&kept)) as u16;
    kept.iter()
        .map(|&i| {
            let w = cols[i].width + if cols[i].flex { spare } else { 0 };
            (i, w)
        })
        .collect()
}

/// `s` in at most `w` columns: cut with an ellipsis, never silently.
pub fn cut(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('…');
    out
}

/// A row of bars for a series of sizes (the newest on the right).
pub fn bars(values: &[u64], n: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let v = &values[values.len().saturating_sub(n)..];
    let max = v.iter().copied().max().unwrap_or(0).max(1);
    v.iter()
        .map(|&x| BARS[((x as u128 * 7) / max as u128) as usize])
        .collect()
}

/// "…/data/db.sqlite3": keeps the end of a path that does not fit.
pub fn ellipsize_left(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max || max < 2 {
        return s.to_string();
    }
    let tail: String = s.chars().skip(n - (max - 1)).collect();
    format!("…{tail}")
}

pub fn tier_short(t: crate::model::Tier) -> &'static str {
    match t {
        crate::model::Tier::Critical => "crit",
        crate::model::Tier::Important => "imp",
        crate::model::Tier::Supporting => "supp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_go_before_values_are_cut() {
        let cols = [flex("Service", 8), col("Size", 9, 8), col("Host", 12, 2)];
        let at_40 = fit(&cols, 40, 1);
        assert_eq!(at_40.len(), 3);
        let at_20 = fit(&cols, 20, 1);
        assert_eq!(at_20.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(at_20[1].1, 9, "the size keeps its width");
        assert_eq!(cut("paperless-ngx", 6), "paper…");
        assert_eq!(bars(&[1, 8], 4), "▁█");
    }
}
