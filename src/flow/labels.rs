//! The label conventions that every label map follows (reference masks, the propagated masks in
//! the metadata, datasets, the phantom): class ids, their default names, their overlay colours.
//! The contract they implement: docs/contracts.md, "Labels".

/// Class id of the background.
pub const BACKGROUND: u8 = 0;
/// Class id of a vein.
pub const VEIN: u8 = 1;
/// Class id of an artery.
pub const ARTERY: u8 = 2;

/// Names of [`BACKGROUND`], [`VEIN`] and [`ARTERY`], for models and datasets that name none.
pub const DEFAULT_NAMES: [&str; 3] = ["background", "vein", "artery"];

/// The name of a class id that nothing names: `class-N`.
pub fn unnamed_class_name(id: usize) -> String {
    format!("class-{id}")
}

/// The name a class id has when a model or dataset does not name it: one of
/// [`DEFAULT_NAMES`], else `class-N`.
pub fn default_name(id: usize) -> String {
    DEFAULT_NAMES
        .get(id)
        .map(|&name| name.to_string())
        .unwrap_or_else(|| unnamed_class_name(id))
}

/// The name of `id` in `names` (indexed by class id), else `class-N`.
pub fn class_name(names: &[String], id: u8) -> String {
    names
        .get(id as usize)
        .cloned()
        .unwrap_or_else(|| unnamed_class_name(id as usize))
}

/// Extends `names` (indexed by class id) to `count` entries, naming the new ids `class-N`.
pub fn extend_class_names(names: &mut Vec<String>, count: usize) {
    while names.len() < count {
        names.push(unnamed_class_name(names.len()));
    }
}

/// RGB colour of a class id in overlays and legends: vein blue, artery red, others from a fixed
/// palette. RGB masks in these colours read back as their ids.
pub fn color(label: u8) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 6] = [
        [40, 200, 80],
        [250, 210, 40],
        [200, 60, 220],
        [40, 220, 220],
        [250, 140, 30],
        [160, 160, 255],
    ];
    match label {
        VEIN => [40, 120, 255],
        ARTERY => [255, 50, 50],
        l => PALETTE[(l as usize) % PALETTE.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_default_names_and_others_are_numbered() {
        assert_eq!(default_name(BACKGROUND as usize), "background");
        assert_eq!(default_name(VEIN as usize), "vein");
        assert_eq!(default_name(ARTERY as usize), "artery");
        assert_eq!(default_name(7), "class-7");
        let names = vec!["background".to_string(), "lumen".to_string()];
        assert_eq!(class_name(&names, 1), "lumen");
        assert_eq!(class_name(&names, 4), "class-4");
    }

    #[test]
    fn names_extend_with_numbered_ids() {
        let mut names = vec!["background".to_string()];
        extend_class_names(&mut names, 3);
        assert_eq!(names, ["background", "class-1", "class-2"]);
        extend_class_names(&mut names, 2);
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn vein_is_blue_and_artery_red() {
        assert_eq!(color(VEIN), [40, 120, 255]);
        assert_eq!(color(ARTERY), [255, 50, 50]);
        assert_ne!(color(3), color(4));
    }
}
