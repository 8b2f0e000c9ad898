"""A proposed drawing of a community's grids beside the grids it has now: the new grids filled
by how far their households are from the target, the old ones as dashed outlines, the major
streets the drawing keeps to. It only draws the ``geo.grids.draw.Proposal`` it is given."""

from __future__ import annotations

import folium
from shapely.geometry import mapping

from geo.grids.draw import Proposal
from maps.jobs import esc

OLD = "#455a64"
STREET = "#6d4c41"
WITHIN, OVER, UNDER = "#2e7d32", "#c62828", "#1565c0"


def grids_map(proposal: Proposal) -> folium.Map:
    """Fitted to the community; a layer control turns the old grids and the streets on/off."""
    m = folium.Map(tiles=None, control_scale=True, zoom_snap=0.25)
    new = folium.FeatureGroup(name="新网格 proposed grids")
    low, high = proposal.band()
    for grid in proposal.grids:
        colour = UNDER if grid.households < low else OVER if grid.households > high else WITHIN
        popup = (f"<b>{esc(grid.code)}</b><br>{grid.households:,} 户 households"
                 f"{' (估算 estimated in part)' if grid.estimated else ''}<br>"
                 f"{len(grid.buildings):,} 栋 buildings<br>Polsby-Popper {grid.polsby_popper:.2f}"
                 f"{'' if grid.contiguous else '<br><b>not in one piece</b>'}")  # fmt: skip
        folium.GeoJson(
            mapping(grid.boundary), popup=folium.Popup(popup, max_width=260),
            style_function=lambda _, c=colour: {"color": c, "weight": 2, "fillColor": c,
                                                "fillOpacity": 0.25, "className": "grid-new"},
        ).add_to(new)  # fmt: skip
    new.add_to(m)
    if proposal.old:
        old = folium.FeatureGroup(name="现网格 grids now")
        for code, boundary in proposal.old.items():
            folium.GeoJson(
                mapping(boundary), tooltip=esc(code),
                style_function=lambda _: {"color": OLD, "weight": 2, "dashArray": "6 4",
                                          "fill": False, "className": "grid-old"},
            ).add_to(old)  # fmt: skip
        old.add_to(m)
    if proposal.streets:
        streets = folium.FeatureGroup(name="主要道路 major streets")
        for line in proposal.streets:
            folium.GeoJson(mapping(line), style_function=lambda _: {
                "color": STREET, "weight": 4, "opacity": 0.7}).add_to(streets)
        streets.add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    x0, y0, x1, y1 = proposal.boundary.bounds
    m.fit_bounds([[y0, x0], [y1, x1]])
    return m
