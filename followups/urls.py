app_name = "followups"
urlpatterns = []
