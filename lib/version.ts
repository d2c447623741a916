/** The ArcBox release version, reported by /version, /info and every health check. */
export const ARCBOX_VERSION = "0.1.0";
