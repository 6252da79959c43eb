"""The posting-rules pages of one connection, mounted at `connections/<slug:slug>/rules/`: every
view takes the connection's `slug`.

Map rows are addressed by `?source=` (a source value may hold spaces, slashes or dots), routing
rules by their id, versions by their number; the rows of the dimensions, numbering and field
owner tables by their key fields (`?dimension=`, `?entity=&field=`), a dimension's values by
`?dimension=&source=`.
"""

from django.urls import path, re_path

from console import rules_views as views
from console.rules_selectors import SECTIONS

app_name = "rules"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("status/", views.status, name="status"),
    path("check-target/", views.target_check, name="check-target"),
    path("maps/<str:kind>/", views.map_edit, name="map"),
    path("maps/<str:kind>/add/", views.map_row_add, name="map-row-add"),
    path("maps/<str:kind>/row/", views.map_row, name="map-row"),
    path("maps/<str:kind>/row/edit/", views.map_row_edit, name="map-row-edit"),
    path("maps/<str:kind>/row/save/", views.map_row_save, name="map-row-save"),
    path("maps/<str:kind>/row/delete/", views.map_row_delete, name="map-row-delete"),
    path("routing/", views.routing, name="routing"),
    path("routing/add/", views.routing_rule_add, name="routing-add"),
    path("routing/<int:rule_id>/", views.routing_row, name="routing-row"),
    path("routing/<int:rule_id>/edit/", views.routing_row_edit, name="routing-edit"),
    path("routing/<int:rule_id>/save/", views.routing_rule_save, name="routing-save"),
    path("routing/<int:rule_id>/delete/", views.routing_rule_delete, name="routing-delete"),
    path("defaults/", views.defaults, name="defaults"),
    path("defaults/save/", views.defaults_save, name="defaults-save"),
    path("review/", views.review, name="review"),
    path("publish/", views.publish, name="publish"),
    path("discard/", views.discard, name="discard"),
    path("versions/", views.versions, name="versions"),
    path("versions/<int:number>/published/", views.published, name="published"),
    path("versions/<int:number>/retry-fixed/", views.retry_fixed, name="retry-fixed"),
    path("versions/<int:number>/rollback/", views.rollback, name="rollback"),
    path("history/", views.history, name="history"),
    path("dimensions/values/", views.dimension, name="dimension"),
    path("dimensions/values/search/", views.dimension_value_search, name="dimension-search"),
    path("dimensions/values/add/", views.dimension_value_add, name="dimension-value-add"),
    path("dimensions/values/row/", views.dimension_value_row, name="dimension-value"),
    path("dimensions/values/row/edit/", views.dimension_value_edit, name="dimension-value-edit"),
    path("dimensions/values/row/save/", views.dimension_value_save, name="dimension-value-save"),
    path(
        "dimensions/values/row/delete/", views.dimension_value_delete, name="dimension-value-delete"
    ),
    path("files/", views.transfer, name="files"),
    path("files/export/", views.export, name="export"),
    path("files/import/", views.import_file, name="import"),
    *[
        re_path(rf"^(?P<section>{'|'.join(SECTIONS)})/{suffix}$", view, name=name)
        for suffix, view, name in [
            ("", views.section, "section"),
            ("add/", views.section_row_add, "section-add"),
            ("row/", views.section_row, "section-row"),
            ("row/edit/", views.section_row_edit, "section-edit"),
            ("row/save/", views.section_row_save, "section-save"),
            ("row/delete/", views.section_row_delete, "section-delete"),
        ]
    ],
]
