"""One module per tab: its layout, its handlers and (in ../web) its browser code."""
